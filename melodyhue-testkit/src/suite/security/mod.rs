//! Account security: TOTP 2FA, the two-step login, password reset and 2FA-disable by e-mail,
//! login throttling.

use std::time::Duration as StdDuration;

use chrono::Duration;
use serde_json::json;

use super::{Harness, Reply, TEST_ENCRYPTION_KEY, TEST_PASSWORD, TestServer, TestUser};
use crate::smtp::SmtpCatcher;
use melodyhue_core::api::{ACCESS_COOKIE, REFRESH_COOKIE};
use melodyhue_core::auth::totp;
use melodyhue_core::model::{Ban, new_id};
use melodyhue_core::secrets::SecretBox;

/// The code of `secret` at the server's clock, shifted by `steps` of 30 s.
fn code(server: &TestServer, secret: &str, steps: i64) -> String {
    totp::code_at(secret, server.app.now() + Duration::seconds(30 * steps)).unwrap()
}

/// Registers a user and turns 2FA on; returns the user and the TOTP secret. The code of the
/// current step is used up by the verification.
async fn user_with_two_factor(server: &TestServer, name: &str) -> (TestUser, String) {
    let user = server.register(name).await;
    let setup = server
        .post("/auth/2fa/setup", Some(&user.access_token), json!({}))
        .await;
    setup.assert_status(200);
    let secret = setup.body["secret"].as_str().unwrap().to_owned();
    server
        .post(
            "/auth/2fa/verify",
            Some(&user.access_token),
            json!({"code": code(server, &secret, 0)}),
        )
        .await
        .assert_status(200);
    (user, secret)
}

async fn ticket(server: &TestServer, user: &TestUser) -> String {
    let login = server.login(&user.email, TEST_PASSWORD).await;
    login.assert_status(200);
    assert_eq!(login.body["requires_2fa"], true);
    login.body["ticket"].as_str().unwrap().to_owned()
}

async fn second_step(server: &TestServer, ticket: &str, code: &str) -> Reply {
    server
        .post(
            "/auth/login/2fa",
            None,
            json!({"ticket": ticket, "totp": code}),
        )
        .await
}

async fn smtp_server(h: &Harness, catcher: &SmtpCatcher, extra: &[(&str, &str)]) -> TestServer {
    let port = catcher.port().to_string();
    let mut vars = vec![
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", port.as_str()),
        ("SMTP_STARTTLS", "false"),
        ("SMTP_FROM", "melodyhue@example.com"),
        ("FRONTEND_URL", "https://app.example"),
    ];
    vars.extend_from_slice(extra);
    TestServer::start_with(h, &vars).await
}

pub async fn two_factor_setup_and_verification(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("tfa").await;
    let token = Some(user.access_token.as_str());
    let setup = server.post("/auth/2fa/setup", token, json!({})).await;
    setup.assert_status(200);
    let secret = setup.body["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32);
    assert_eq!(
        setup.body["otpauth_url"],
        format!("otpauth://totp/MelodyHue:tfa@example.com?secret={secret}&issuer=MelodyHue")
    );
    // Pending until verified; the secret is encrypted at rest.
    assert_eq!(
        server.get("/users/me", token).await.body["twofa_enabled"],
        false
    );
    let stored = server
        .app
        .store()
        .two_factor(&user.id)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(stored.secret_encrypted, secret);
    assert_eq!(
        SecretBox::new(TEST_ENCRYPTION_KEY)
            .decrypt(&stored.secret_encrypted)
            .unwrap(),
        secret
    );
    assert_eq!(
        server.login("tfa", TEST_PASSWORD).await.body["requires_2fa"],
        false
    );
    for bad in ["000000", "12345", "abcdef", ""] {
        let reply = server
            .post("/auth/2fa/verify", token, json!({"code": bad}))
            .await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 422),
            "{bad}: {}",
            reply.status
        );
        if reply.status == 400 {
            assert_eq!(reply.detail(), "Invalid code");
        }
    }
    server
        .post(
            "/auth/2fa/verify",
            token,
            json!({"code": code(&server, secret, 0)}),
        )
        .await
        .assert_status(200);
    assert_eq!(
        server.get("/users/me", token).await.body["twofa_enabled"],
        true
    );
    assert_eq!(
        server.app.store().stats().await.unwrap().active_2fa_count,
        1
    );
    let again = server.post("/auth/2fa/setup", token, json!({})).await;
    again.assert_status(400);
    assert_eq!(again.detail(), "2FA already enabled");
    server
        .post("/auth/2fa/setup", None, json!({}))
        .await
        .assert_status(401);
}

pub async fn two_factor_login_takes_a_ticket_and_a_code(h: &Harness) {
    let server = TestServer::start(h).await;
    let (user, secret) = user_with_two_factor(&server, "ticketed").await;
    let login = server.login("ticketed", TEST_PASSWORD).await;
    login.assert_status(200);
    assert_eq!(
        login.body,
        json!({"requires_2fa": true, "ticket": login.body["ticket"]})
    );
    assert!(
        login.set_cookie(ACCESS_COOKIE).is_none(),
        "no session before the second step"
    );
    let ticket = login.body["ticket"].as_str().unwrap();
    let reply = second_step(&server, ticket, &code(&server, &secret, 1)).await;
    reply.assert_status(200);
    let keys: Vec<&str> = reply
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "refresh_token",
            "role",
            "token_type",
            "user_id"
        ]
    );
    assert_eq!(reply.body["user_id"], user.id.as_str());
    assert_eq!(reply.body["token_type"], "bearer");
    assert!(reply.set_cookie(ACCESS_COOKIE).is_some());
    assert!(reply.set_cookie(REFRESH_COOKIE).is_some());
    server
        .get("/users/me", reply.body["access_token"].as_str())
        .await
        .assert_status(200);
    // A ticket is single use.
    let reused = second_step(&server, ticket, &code(&server, &secret, 1)).await;
    reused.assert_status(400);
    assert_eq!(reused.detail(), "Invalid or expired ticket");
    let unknown = second_step(&server, "no-such-ticket", "123456").await;
    unknown.assert_status(400);
    server
        .post("/auth/login/2fa", None, json!({"ticket": ticket}))
        .await
        .assert_status(422);
}

pub async fn two_factor_codes_work_once(h: &Harness) {
    let server = TestServer::start(h).await;
    let (user, secret) = user_with_two_factor(&server, "replay").await;
    // The current step was used by the verification.
    let first = ticket(&server, &user).await;
    let replayed = second_step(&server, &first, &code(&server, &secret, 0)).await;
    replayed.assert_status(401);
    assert_eq!(replayed.detail(), "Invalid 2FA code");
    second_step(&server, &first, &code(&server, &secret, 1))
        .await
        .assert_status(200);
    let second = ticket(&server, &user).await;
    second_step(&server, &second, &code(&server, &secret, 1))
        .await
        .assert_status(401);
    // Codes older than the last accepted one are refused too.
    second_step(&server, &second, &code(&server, &secret, -1))
        .await
        .assert_status(401);
}

pub async fn concurrent_logins_with_one_code_cannot_both_pass(h: &Harness) {
    let server = TestServer::start(h).await;
    let (user, secret) = user_with_two_factor(&server, "racer").await;
    let (a, b) = tokio::join!(ticket(&server, &user), ticket(&server, &user));
    let code = code(&server, &secret, 1);
    let (ra, rb) = tokio::join!(
        second_step(&server, &a, &code),
        second_step(&server, &b, &code)
    );
    let mut statuses = [ra.status.as_u16(), rb.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401]);
}

pub async fn tickets_die_after_five_wrong_codes_or_five_minutes(h: &Harness) {
    let server = TestServer::start(h).await;
    let (user, secret) = user_with_two_factor(&server, "guesser").await;
    let doomed = ticket(&server, &user).await;
    for _ in 0..5 {
        second_step(&server, &doomed, "000000")
            .await
            .assert_status(401);
    }
    let dead = second_step(&server, &doomed, &code(&server, &secret, 1)).await;
    dead.assert_status(400);
    assert_eq!(dead.detail(), "Invalid or expired ticket");
    // The throttle (5 failures for this account) now blocks new second steps for a while.
    let fresh = ticket(&server, &user).await;
    let throttled = second_step(&server, &fresh, &code(&server, &secret, 1)).await;
    throttled.assert_status(429);
    assert!(throttled.headers.contains_key("retry-after"));
    server.clock.advance(Duration::minutes(16));
    let old = ticket(&server, &user).await;
    server.clock.advance(Duration::minutes(6));
    let expired = second_step(&server, &old, &code(&server, &secret, 0)).await;
    expired.assert_status(400);
    assert_eq!(expired.detail(), "Invalid or expired ticket");
    let late = ticket(&server, &user).await;
    second_step(&server, &late, &code(&server, &secret, 0))
        .await
        .assert_status(200);
}

pub async fn banned_users_stop_at_the_second_step(h: &Harness) {
    let server = TestServer::start(h).await;
    let (user, secret) = user_with_two_factor(&server, "bannedtfa").await;
    let pending = ticket(&server, &user).await;
    let now = server.app.now();
    let ban = Ban {
        id: new_id(),
        user_id: user.id.clone(),
        moderator_id: None,
        reason: "test".into(),
        created_at: now,
        until: None,
        revoked_at: None,
    };
    server.app.store().ban_user(&ban, now).await.unwrap();
    let reply = second_step(&server, &pending, &code(&server, &secret, 1)).await;
    reply.assert_status(403);
    assert_eq!(reply.detail(), "User banned");
    assert_eq!(reply.headers["x-account-banned"], "true");
}

pub async fn two_factor_disable_with_a_code(h: &Harness) {
    let server = TestServer::start(h).await;
    let plain = server.register("plain").await;
    let not_enabled = server
        .post(
            "/auth/2fa/disable",
            Some(&plain.access_token),
            json!({"code": "123456"}),
        )
        .await;
    not_enabled.assert_status(400);
    assert_eq!(not_enabled.detail(), "2FA not enabled");
    let (user, secret) = user_with_two_factor(&server, "disabler").await;
    let token = Some(user.access_token.as_str());
    let wrong = server
        .post("/auth/2fa/disable", token, json!({"code": "000000"}))
        .await;
    wrong.assert_status(400);
    assert_eq!(wrong.detail(), "Invalid code");
    let ok = server
        .post(
            "/auth/2fa/disable",
            token,
            json!({"code": code(&server, &secret, 1)}),
        )
        .await;
    ok.assert_status(200);
    assert_eq!(ok.body, json!({"status": "disabled"}));
    let login = server.login("disabler", TEST_PASSWORD).await;
    assert_eq!(login.body["requires_2fa"], false);
    server
        .post("/auth/2fa/disable", token, json!({}))
        .await
        .assert_status(422);
}

pub async fn two_factor_disable_by_email(h: &Harness) {
    let catcher = SmtpCatcher::start().await.unwrap();
    let server = smtp_server(h, &catcher, &[]).await;
    let (user, _secret) = user_with_two_factor(&server, "lostphone").await;
    let token = Some(user.access_token.as_str());
    let reply = server
        .post("/auth/2fa/disable/request", token, json!({}))
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body, json!({"status": "sent", "email_sent": true}));
    let messages = catcher
        .wait_for_messages(1, StdDuration::from_secs(10))
        .await;
    let message = &messages[0];
    assert_eq!(message.recipients, [user.email.as_str()]);
    assert!(
        message.subject.contains("two-factor"),
        "{}",
        message.subject
    );
    let prefix = "https://app.example/auth/2fa/disable?token=";
    let link = message
        .text
        .split_whitespace()
        .find(|w| w.starts_with(prefix))
        .expect("the mail carries the link");
    let raw = &link[prefix.len()..];
    assert!(message.html.contains(raw));
    // The stored value is a hash, not the token.
    let confirmed = server
        .get(&format!("/auth/2fa/disable/confirm?token={raw}"), None)
        .await;
    confirmed.assert_status(200);
    assert_eq!(confirmed.body, json!({"status": "disabled"}));
    assert_eq!(
        server.get("/users/me", token).await.body["twofa_enabled"],
        false
    );
    let reused = server
        .post("/auth/2fa/disable/confirm", None, json!({"token": raw}))
        .await;
    reused.assert_status(400);
    assert_eq!(reused.detail(), "Invalid or expired token");
    server
        .post(
            "/auth/2fa/disable/confirm",
            None,
            json!({"token": "garbage"}),
        )
        .await
        .assert_status(400);
    server
        .post("/auth/2fa/disable/confirm", None, json!({}))
        .await
        .assert_status(422);
}

pub async fn two_factor_disable_tokens_expire(h: &Harness) {
    let server = TestServer::start_with(h, &[("EMAIL_DEBUG", "true")]).await;
    let (user, _secret) = user_with_two_factor(&server, "slowpoke").await;
    let reply = server
        .post(
            "/auth/2fa/disable/request",
            Some(&user.access_token),
            json!({}),
        )
        .await;
    reply.assert_status(200);
    // No SMTP configured: nothing is sent, and the answer says so.
    assert_eq!(reply.body["email_sent"], false);
    let raw = reply.body["token"].as_str().unwrap();
    server.clock.advance(Duration::minutes(61));
    server
        .post("/auth/2fa/disable/confirm", None, json!({"token": raw}))
        .await
        .assert_status(400);
}

pub async fn password_reset_by_email(h: &Harness) {
    let catcher = SmtpCatcher::start().await.unwrap();
    let server = smtp_server(h, &catcher, &[]).await;
    let (user, _secret) = user_with_two_factor(&server, "forgetful").await;
    let other_session = server.login("forgetful", TEST_PASSWORD).await;
    assert_eq!(other_session.body["requires_2fa"], true);
    let reply = server
        .post(
            "/auth/forgot",
            None,
            json!({"email": "FORGETFUL@example.com"}),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body, json!({"status": "sent"}));
    let messages = catcher
        .wait_for_messages(1, StdDuration::from_secs(10))
        .await;
    let message = &messages[0];
    assert_eq!(message.recipients, [user.email.as_str()]);
    assert_eq!(message.subject, "Reset your MelodyHue password");
    let prefix = "https://app.example/auth/reset?token=";
    let link = message
        .text
        .split_whitespace()
        .find(|w| w.starts_with(prefix))
        .expect("the mail carries the link");
    let raw = &link[prefix.len()..];
    let reset = server
        .post(
            "/auth/reset",
            None,
            json!({"token": raw, "new_password": "a-brand-new-one"}),
        )
        .await;
    reset.assert_status(200);
    assert_eq!(reset.body, json!({"status": "ok"}));
    // Every session is gone, 2FA is removed, the old password no longer works.
    let refresh = server
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": user.refresh_token}),
        )
        .await;
    refresh.assert_status(401);
    server
        .get("/users/me", Some(&user.access_token))
        .await
        .assert_status(200);
    server
        .login("forgetful", TEST_PASSWORD)
        .await
        .assert_status(401);
    let login = server.login("forgetful", "a-brand-new-one").await;
    login.assert_status(200);
    assert_eq!(login.body["requires_2fa"], false);
    let again = server
        .post(
            "/auth/reset",
            None,
            json!({"token": raw, "new_password": "yet-another-one"}),
        )
        .await;
    again.assert_status(400);
    assert_eq!(again.detail(), "Invalid or expired token");
}

pub async fn forgot_answers_the_same_for_unknown_emails(h: &Harness) {
    let catcher = SmtpCatcher::start().await.unwrap();
    let server = smtp_server(h, &catcher, &[]).await;
    server.register("known").await;
    let known = server
        .post("/auth/forgot", None, json!({"email": "known@example.com"}))
        .await;
    let unknown = server
        .post("/auth/forgot", None, json!({"email": "ghost@example.com"}))
        .await;
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    let messages = catcher
        .wait_for_messages(2, StdDuration::from_millis(1500))
        .await;
    assert_eq!(messages.len(), 1, "only the existing account gets a mail");
    assert_eq!(messages[0].recipients, ["known@example.com"]);
    server
        .post("/auth/forgot", None, json!({"email": "nope"}))
        .await
        .assert_status(422);
    server
        .post("/auth/forgot", None, json!({}))
        .await
        .assert_status(422);
}

pub async fn reset_tokens_in_debug_mode_and_their_expiry(h: &Harness) {
    let server = TestServer::start_with(
        h,
        &[
            ("EMAIL_DEBUG", "true"),
            ("PASSWORD_RESET_URL_BASE", "https://x.example/r/"),
        ],
    )
    .await;
    server.register("debugged").await;
    let known = server
        .post(
            "/auth/forgot",
            None,
            json!({"email": "debugged@example.com"}),
        )
        .await;
    let raw = known.body["token"].as_str().unwrap().to_owned();
    assert_eq!(raw.len(), 43, "32 random bytes, base64url");
    let unknown = server
        .post("/auth/forgot", None, json!({"email": "ghost@example.com"}))
        .await;
    assert_eq!(unknown.body, json!({"status": "sent"}));
    server
        .post(
            "/auth/reset",
            None,
            json!({"token": raw, "new_password": "short"}),
        )
        .await
        .assert_status(422);
    server
        .post(
            "/auth/reset",
            None,
            json!({"token": "garbage", "new_password": "long-enough-1"}),
        )
        .await
        .assert_status(400);
    server.clock.advance(Duration::minutes(61));
    let expired = server
        .post(
            "/auth/reset",
            None,
            json!({"token": raw, "new_password": "long-enough-1"}),
        )
        .await;
    expired.assert_status(400);
    server
        .login("debugged", TEST_PASSWORD)
        .await
        .assert_status(200);
}

pub async fn mail_failures_do_not_fail_requests(h: &Harness) {
    // A port where nothing listens: SMTP is down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let server = TestServer::start_with(
        h,
        &[
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_PORT", port.as_str()),
            ("SMTP_STARTTLS", "false"),
            ("EMAIL_DEBUG", "true"),
        ],
    )
    .await;
    server.register("unlucky").await;
    let reply = server
        .post(
            "/auth/forgot",
            None,
            json!({"email": "unlucky@example.com"}),
        )
        .await;
    reply.assert_status(200);
    let raw = reply.body["token"].as_str().unwrap();
    server
        .post(
            "/auth/reset",
            None,
            json!({"token": raw, "new_password": "still-works-1"}),
        )
        .await
        .assert_status(200);
    server
        .login("unlucky", "still-works-1")
        .await
        .assert_status(200);
}

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

/// The argon2 computations the server made so far.
fn computations(server: &TestServer) -> u64 {
    server.app.password_hasher().computations()
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
    assert_eq!(super::status_counts(&replies), [(401, 5), (429, 95)]);
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
    assert_eq!(super::status_counts(&replies), [(401, 5), (429, 55)]);
}

/// A six-digit code that none of the steps around now accepts.
fn wrong_code(server: &TestServer, secret: &str) -> String {
    let valid: Vec<String> = (-2..=2).map(|step| code(server, secret, step)).collect();
    (0..10)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !valid.contains(c))
        .unwrap()
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
    assert_eq!(super::status_counts(&replies), [(400, 195), (401, 5)]);
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
    assert_eq!(super::status_counts(&replies), [(400, 5), (429, 35)]);
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

pub async fn totp_codes_may_hold_spaces_and_dashes(h: &Harness) {
    let server = TestServer::start(h).await;
    let user = server.register("spaced").await;
    let token = Some(user.access_token.as_str());
    let setup = server.post("/auth/2fa/setup", token, json!({})).await;
    let secret = setup.body["secret"].as_str().unwrap().to_owned();
    let spaced = |step: i64| {
        let code = code(&server, &secret, step);
        format!("{} {}", &code[..3], &code[3..])
    };
    let dashed = |step: i64| {
        let code = code(&server, &secret, step);
        format!("{}-{}", &code[..3], &code[3..])
    };
    server
        .post("/auth/2fa/verify", token, json!({"code": spaced(0)}))
        .await
        .assert_status(200);
    let login = server.login("spaced", TEST_PASSWORD).await;
    let pending = login.body["ticket"].as_str().unwrap();
    second_step(&server, pending, &format!(" {} ", dashed(1)))
        .await
        .assert_status(200);
    let wrong = wrong_code(&server, &secret);
    let wrong_spaced = format!("{} {}", &wrong[..3], &wrong[3..]);
    server
        .post("/auth/2fa/disable", token, json!({"code": wrong_spaced}))
        .await
        .assert_status(400);
    server
        .post("/auth/2fa/disable", token, json!({"code": "12 34 5"}))
        .await
        .assert_status(400);
    server.clock.advance(Duration::seconds(30));
    server
        .post("/auth/2fa/disable", token, json!({"code": spaced(1)}))
        .await
        .assert_status(200);
}

pub async fn every_hashing_route_is_admitted_per_client(h: &Harness) {
    let server = TestServer::start_with(
        h,
        &[("PASSWORD_HASH_PER_CLIENT", "1"), ("EMAIL_DEBUG", "true")],
    )
    .await;
    let user = server.register("admitted").await;
    let reset = server
        .post("/auth/forgot", None, json!({"email": user.email}))
        .await;
    let reset_token = reset.body["token"].as_str().unwrap().to_owned();
    // Another request of this client is hashing: every route that hashes refuses at once.
    let hashing = server
        .app
        .password_hasher()
        .admit(Some("127.0.0.1".parse().unwrap()))
        .unwrap();
    let computed = computations(&server);
    let refused = [
        server
            .post(
                "/auth/register",
                None,
                json!({"username": "second", "email": "second@example.com", "password": TEST_PASSWORD}),
            )
            .await,
        server.login("admitted", TEST_PASSWORD).await,
        server
            .post(
                "/users/me/password",
                Some(&user.access_token),
                json!({"old_password": TEST_PASSWORD, "new_password": "a-new-password"}),
            )
            .await,
        server
            .post(
                "/auth/reset",
                None,
                json!({"token": reset_token, "new_password": "a-new-password"}),
            )
            .await,
    ];
    for reply in &refused {
        reply.assert_status(429);
        assert_eq!(
            reply.detail(),
            "Too many concurrent requests, try again shortly"
        );
        assert_eq!(reply.headers["retry-after"], "1");
    }
    assert_eq!(computations(&server), computed);
    // Nothing was spent or changed by the refusals.
    drop(hashing);
    server
        .login("admitted", TEST_PASSWORD)
        .await
        .assert_status(200);
    server
        .post(
            "/auth/reset",
            None,
            json!({"token": reset_token, "new_password": "a-new-password"}),
        )
        .await
        .assert_status(200);
}

pub async fn a_full_hash_queue_answers_503_and_light_clients_go_first(h: &Harness) {
    use futures_util::FutureExt as _;
    let server = TestServer::start_with(
        h,
        &[
            ("TRUST_PROXY", "true"),
            ("PASSWORD_HASH_WORKERS", "1"),
            ("PASSWORD_HASH_QUEUE", "1"),
        ],
    )
    .await;
    server.register("queued").await;
    let passwords = &server.app.password_hasher();
    let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
    // One request hashes (it holds the only worker), one waits: the queue is full.
    let holder = passwords.admit(ip("192.0.2.1")).unwrap();
    let running = holder.hold_worker().await.unwrap();
    let waiter = passwords.admit(ip("192.0.2.2")).unwrap();
    let mut waiting = Box::pin(waiter.hold_worker());
    assert!((&mut waiting).now_or_never().is_none());
    // A client with no better claim than the waiter is refused at once.
    let busy = server
        .send(
            server
                .http
                .post(server.url("/auth/login"))
                .header("x-forwarded-for", "192.0.2.3")
                .json(&json!({"username_or_email": "queued", "password": TEST_PASSWORD})),
        )
        .await;
    busy.assert_status(503);
    assert_eq!(busy.detail(), "Server busy, try again shortly");
    assert_eq!(busy.headers["retry-after"], "1");
    drop(waiting);
    // A network that hashed a lot waits; a client that never hashed takes its place...
    for _ in 0..5 {
        drop(passwords.admit(ip("198.51.100.1")).unwrap());
    }
    let heavy = passwords.admit(ip("198.51.100.1")).unwrap();
    let mut heavy_waiting = Box::pin(heavy.hold_worker());
    assert!((&mut heavy_waiting).now_or_never().is_none());
    let light = tokio::spawn(super::receive(
        server
            .http
            .post(server.url("/auth/login"))
            .header("x-forwarded-for", "203.0.113.10")
            .json(&json!({"username_or_email": "queued", "password": TEST_PASSWORD})),
    ));
    let evicted = tokio::time::timeout(StdDuration::from_secs(10), heavy_waiting)
        .await
        .expect("the heavy waiter is told at once");
    assert!(evicted.is_err());
    // ... and hashes as soon as the worker is free.
    drop(running);
    light.await.unwrap().assert_status(200);
}

pub async fn shared_usernames_cost_one_hash_per_failed_login(h: &Harness) {
    let server = TestServer::start(h).await;
    let mut ids = Vec::new();
    for (i, password) in ["first-password", "second-password", "third-password"]
        .iter()
        .enumerate()
    {
        let reply = server
            .post(
                "/auth/register",
                None,
                json!({"username": "crowd", "email": format!("crowd{i}@example.com"), "password": password}),
            )
            .await;
        reply.assert_status(200);
        ids.push(reply.body["user_id"].as_str().unwrap().to_owned());
    }
    server.register("alone").await;
    let failed = |identifier: &'static str| {
        let server = &server;
        async move {
            let before = computations(server);
            server
                .login(identifier, "wrong-password")
                .await
                .assert_status(401);
            computations(server) - before
        }
    };
    // Three accounts, one account, no account: one computation each.
    assert_eq!(failed("crowd").await, 1);
    assert_eq!(failed("alone").await, 1);
    // (The decoy checked for unknown identifiers is made on first use.)
    failed("nobody").await;
    assert_eq!(failed("nobody").await, 1);
    for (id, password) in ids
        .iter()
        .zip(["first-password", "second-password", "third-password"])
    {
        let reply = server.login("crowd", password).await;
        reply.assert_status(200);
        assert_eq!(reply.body["user_id"], id.as_str());
    }
    // Accounts that do not share their username's salt yet (the earlier service's, or renamed
    // ones) cost one computation per salt until each logs in once.
    let store = server.app.store();
    let slot = server.app.password_hasher().admit(None).unwrap();
    for (i, password) in ["one", "two", "three"].iter().enumerate() {
        let now = server.app.now();
        let legacy = melodyhue_core::model::User {
            id: new_id(),
            username: "legacy".into(),
            email: format!("legacy{i}@example.com"),
            password_hash: slot.hash(&format!("legacy-{password}")).await.unwrap(),
            role: melodyhue_core::model::Role::User,
            created_at: now + Duration::seconds(i as i64),
            updated_at: now,
            last_login_at: None,
        };
        store.insert_user(&legacy).await.unwrap();
    }
    drop(slot);
    assert_eq!(failed("legacy").await, 3);
    for password in ["one", "two", "three"] {
        server
            .login("legacy", &format!("legacy-{password}"))
            .await
            .assert_status(200);
    }
    assert_eq!(failed("legacy").await, 1);
    for password in ["one", "two", "three"] {
        server
            .login("legacy", &format!("legacy-{password}"))
            .await
            .assert_status(200);
    }
}
