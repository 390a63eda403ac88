//! Failed-login budgets: per identifier, per client IP (behind trusted proxies), and per ticket
//! for second-factor codes, spent before any hash.

use chrono::Duration;
use serde_json::json;

use super::{code, computations, second_step, ticket, user_with_two_factor, wrong_code};
use crate::suite::{Harness, Reply, TEST_PASSWORD, TestServer, status_counts};

pub async fn login_throttle_per_identifier(h: &Harness) {
    let server = TestServer::start(h).await;
    server.register("target").await;
    for _ in 0..5 {
        server
            .login("target", "wrong-password")
            .await
            .assert_status(401);
    }
    // Even the right password is refused while throttled, by any identifier of the account.
    let throttled = server.login("TARGET@example.com", TEST_PASSWORD).await;
    throttled.assert_status(429);
    let retry: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert!(!throttled.detail().is_empty());
    server.clock.advance(Duration::minutes(15));
    server
        .login("target", TEST_PASSWORD)
        .await
        .assert_status(200);
}

pub async fn login_success_forgets_earlier_failures(h: &Harness) {
    let server = TestServer::start(h).await;
    server.register("clumsy").await;
    for _ in 0..4 {
        server
            .login("clumsy", "wrong-password")
            .await
            .assert_status(401);
    }
    server
        .login("clumsy", TEST_PASSWORD)
        .await
        .assert_status(200);
    for _ in 0..4 {
        server
            .login("clumsy", "wrong-password")
            .await
            .assert_status(401);
    }
    server
        .login("clumsy", TEST_PASSWORD)
        .await
        .assert_status(200);
}

pub async fn login_throttle_per_client_ip(h: &Harness) {
    let server = TestServer::start(h).await;
    server.register("bystander").await;
    for i in 0..20 {
        server
            .login(&format!("nobody{i}"), "wrong-password")
            .await
            .assert_status(401);
    }
    let blocked = server.login("bystander", TEST_PASSWORD).await;
    blocked.assert_status(429);
    assert!(blocked.headers.contains_key("retry-after"));
}

/// Behind a proxy that sends no client address (the web frontend's SSR server) every user
/// shares the proxy's network budget; `LOGIN_MAX_FAILURES_PER_IP=0` turns that budget off,
/// and the accounts' own budgets still hold.
pub async fn the_network_budget_can_be_turned_off(h: &Harness) {
    let server = TestServer::start_with(h, &[("LOGIN_MAX_FAILURES_PER_IP", "0")]).await;
    for name in ["first", "second", "third", "fourth", "bystander"] {
        server.register(name).await;
    }
    for name in ["first", "second", "third", "fourth"] {
        for _ in 0..5 {
            server
                .login(name, "wrong-password")
                .await
                .assert_status(401);
        }
    }
    for i in 0..25 {
        server
            .login(&format!("nobody{i}"), "wrong-password")
            .await
            .assert_status(401);
    }
    server
        .login("bystander", TEST_PASSWORD)
        .await
        .assert_status(200);
    // Each attacked account is still throttled on its own.
    let throttled = server.login("first", TEST_PASSWORD).await;
    throttled.assert_status(429);
    assert!(throttled.headers.contains_key("retry-after"));
}

/// A failed login with these `X-Forwarded-For` header lines.
async fn fail_from(server: &TestServer, forwarded: &[&str], who: &str) -> Reply {
    let mut request = server.http.post(server.url("/auth/login"));
    for line in forwarded {
        request = request.header("x-forwarded-for", *line);
    }
    server
        .send(request.json(&json!({"username_or_email": who, "password": "wrong-password"})))
        .await
}

pub async fn forwarded_ips_count_only_behind_a_trusted_proxy(h: &Harness) {
    let trusting = TestServer::start_with(h, &[("TRUST_PROXY", "true")]).await;
    // The client writes what it likes on the left; our proxy appends the address it saw.
    for i in 0..20 {
        let spoofed = format!("198.51.100.{i}, 203.0.113.1");
        fail_from(&trusting, &[&spoofed], &format!("a{i}"))
            .await
            .assert_status(401);
    }
    let blocked = fail_from(&trusting, &["192.0.2.99, 203.0.113.1"], "fresh").await;
    blocked.assert_status(429);
    // The list spans header lines.
    fail_from(&trusting, &["192.0.2.1", "203.0.113.1"], "fresh2")
        .await
        .assert_status(429);
    fail_from(&trusting, &["203.0.113.1, 203.0.113.2"], "fresh3")
        .await
        .assert_status(401);
    // Without TRUST_PROXY the header is ignored: every attempt is the socket's IP.
    let plain = TestServer::start(h).await;
    for i in 0..20 {
        fail_from(&plain, &[&format!("203.0.113.{i}")], &format!("b{i}"))
            .await
            .assert_status(401);
    }
    fail_from(&plain, &["198.51.100.9"], "fresh")
        .await
        .assert_status(429);
}

pub async fn trusted_proxy_hops_count_from_the_right(h: &Harness) {
    let server =
        TestServer::start_with(h, &[("TRUST_PROXY", "true"), ("TRUSTED_PROXY_HOPS", "2")]).await;
    // Two proxies: the client's address is the second entry from the right.
    for i in 0..20 {
        let forwarded = format!("192.0.2.{i}, 203.0.113.5, 10.0.0.{i}");
        fail_from(&server, &[&forwarded], &format!("c{i}"))
            .await
            .assert_status(401);
    }
    fail_from(&server, &["203.0.113.5, 10.9.9.9"], "fresh")
        .await
        .assert_status(429);
    // A request that came through one of the two proxies only: its one entry is the client.
    fail_from(&server, &["203.0.113.5"], "fresh2")
        .await
        .assert_status(429);
    fail_from(&server, &["203.0.113.6, 203.0.113.5"], "fresh3")
        .await
        .assert_status(401);
    // Ports are allowed; an entry that is no address leaves the socket's peer.
    fail_from(&server, &["[2001:db8::5]:4711, 10.0.0.1"], "fresh4")
        .await
        .assert_status(401);
    for i in 0..20 {
        fail_from(&server, &["not-an-ip, 10.0.0.1"], &format!("d{i}"))
            .await
            .assert_status(401);
    }
    // Those twenty were counted for the peer (127.0.0.1), not for a made-up address.
    fail_from(&server, &["127.0.0.1, 10.0.0.1"], "fresh5")
        .await
        .assert_status(429);
}

/// A login request on `client`.
fn login_request(
    server: &TestServer,
    client: &reqwest::Client,
    identifier: &str,
    password: &str,
) -> reqwest::RequestBuilder {
    client
        .post(server.url("/auth/login"))
        .json(&json!({"username_or_email": identifier, "password": password}))
}

/// Lets every request of the loopback client hash at once, so that only the failure budgets
/// limit what a test races.
const UNLIMITED_HASHING: [(&str, &str); 2] = [
    ("PASSWORD_HASH_PER_CLIENT", "1000"),
    ("PASSWORD_HASH_QUEUE", "1000"),
];

pub async fn concurrent_guesses_spend_the_budget_before_hashing(h: &Harness) {
    let server = TestServer::start_with(h, &UNLIMITED_HASHING).await;
    server.register("raced").await;
    let before = computations(&server);
    let replies = server
        .at_once(100, |i, client| {
            login_request(&server, client, "raced", &format!("guess-{i}"))
        })
        .await;
    // Five guesses were checked; 95 were refused before any hash.
    assert_eq!(status_counts(&replies), [(401, 5), (429, 95)]);
    assert_eq!(computations(&server) - before, 5);
    for reply in replies.iter().filter(|r| r.status == 429) {
        assert_eq!(reply.detail(), "Too many failed attempts, try again later");
        assert!(reply.headers.contains_key("retry-after"));
    }
    let before = computations(&server);
    server
        .login("raced", TEST_PASSWORD)
        .await
        .assert_status(429);
    assert_eq!(
        computations(&server),
        before,
        "a throttled login costs no hash"
    );
}

pub async fn guesses_by_username_and_email_share_the_account_budget(h: &Harness) {
    let server = TestServer::start_with(h, &UNLIMITED_HASHING).await;
    server.register("twofaced").await;
    for identifier in ["twofaced", "twofaced", "TwoFaced@Example.com"] {
        server
            .login(identifier, "wrong-password")
            .await
            .assert_status(401);
    }
    server
        .login("twofaced@example.com", "wrong-password")
        .await
        .assert_status(401);
    server
        .login("twofaced", "wrong-password")
        .await
        .assert_status(401);
    server
        .login("TWOFACED@EXAMPLE.COM", TEST_PASSWORD)
        .await
        .assert_status(429);
    server
        .login("twofaced", TEST_PASSWORD)
        .await
        .assert_status(429);
    // Raced: half by username, half by e-mail, one budget.
    server.register("raced2").await;
    let replies = server
        .at_once(60, |i, client| {
            let identifier = if i % 2 == 0 {
                "raced2"
            } else {
                "RACED2@example.com"
            };
            login_request(&server, client, identifier, "wrong-password")
        })
        .await;
    assert_eq!(status_counts(&replies), [(401, 5), (429, 55)]);
}

pub async fn concurrent_codes_on_one_ticket_check_five(h: &Harness) {
    // Budgets out of the way: the ticket's own count is what is raced.
    let server = TestServer::start_with(
        h,
        &[
            ("LOGIN_MAX_FAILURES_PER_IDENTIFIER", "100000"),
            ("LOGIN_MAX_FAILURES_PER_IP", "100000"),
        ],
    )
    .await;
    let (user, secret) = user_with_two_factor(&server, "ticketrace").await;
    let raced = ticket(&server, &user).await;
    let wrong = wrong_code(&server, &secret);
    let replies = server
        .at_once(200, |_, client| {
            client
                .post(server.url("/auth/login/2fa"))
                .json(&json!({"ticket": raced, "totp": wrong}))
        })
        .await;
    // Five codes were checked (401); the others found the ticket dead (400).
    assert_eq!(status_counts(&replies), [(400, 195), (401, 5)]);
    for reply in replies.iter().filter(|r| r.status == 400) {
        assert_eq!(reply.detail(), "Invalid or expired ticket");
    }
    let right = second_step(&server, &raced, &code(&server, &secret, 1)).await;
    right.assert_status(400);
    let stored = server.app.store().challenge(&raced).await.unwrap().unwrap();
    assert_eq!(stored.attempts, 5);
}

pub async fn two_factor_code_checks_spend_the_second_factor_budget(h: &Harness) {
    let server = TestServer::start(h).await;
    let (user, secret) = user_with_two_factor(&server, "bruteforced").await;
    let token = Some(user.access_token.as_str());
    let wrong = wrong_code(&server, &secret);
    // A stolen access token does not allow unlimited guesses at the code that disables 2FA.
    let replies = server
        .at_once(40, |_, client| {
            client
                .post(server.url("/auth/2fa/disable"))
                .bearer_auth(&user.access_token)
                .json(&json!({"code": wrong}))
        })
        .await;
    assert_eq!(status_counts(&replies), [(400, 5), (429, 35)]);
    let right = server
        .post(
            "/auth/2fa/disable",
            token,
            json!({"code": code(&server, &secret, 1)}),
        )
        .await;
    right.assert_status(429);
    assert!(right.headers.contains_key("retry-after"));
    // The second login step spends the same budget.
    let pending = ticket(&server, &user).await;
    second_step(&server, &pending, &code(&server, &secret, 1))
        .await
        .assert_status(429);
    server.clock.advance(Duration::minutes(16));
    second_step(&server, &pending, &code(&server, &secret, 0))
        .await
        .assert_status(400);
    server
        .post(
            "/auth/2fa/disable",
            token,
            json!({"code": code(&server, &secret, 1)}),
        )
        .await
        .assert_status(401);
}
