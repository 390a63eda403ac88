//! Account identity and recovery: one canonical form of e-mail addresses, reset links that die
//! together, recoverable e-mail changes, mail budgets, and the inputs and messages the real
//! frontend sends and reads.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use serde_json::{Value, json};

use super::admin::register_with_role;
use super::{Harness, Reply, TEST_PASSWORD, TestServer, TestUser};
use crate::smtp::{CaughtMessage, SmtpCatcher};
use melodyhue_core::model::Role;

async fn register_as(server: &TestServer, username: &str, email: &str) -> Reply {
    server
        .post(
            "/auth/register",
            None,
            json!({"username": username, "email": email, "password": TEST_PASSWORD}),
        )
        .await
}

/// The frontend's test for "This email is already in use" (register.component.ts).
fn frontend_sees_email_taken(detail: &str) -> bool {
    let lower = detail.to_lowercase();
    lower.trim() == "email déjà pris"
        || (lower.contains("email")
            && ["déjà", "pris", "taken", "exists"]
                .iter()
                .any(|w| lower.contains(w)))
}

pub async fn email_identity_is_one_canonical_form(h: &Harness) {
    let server = TestServer::start(h).await;
    register_as(&server, "ossi", "Össi@example.com")
        .await
        .assert_status(200);
    // Full case folding, not ASCII-only: one account.
    let again = register_as(&server, "ossi2", "össi@example.com").await;
    again.assert_status(409);
    assert!(
        frontend_sees_email_taken(again.detail()),
        "{}",
        again.detail()
    );
    // Precomposed and decomposed are one address.
    register_as(&server, "zoe", "zo\u{eb}@example.com")
        .await
        .assert_status(200);
    register_as(&server, "zoe2", "ZOE\u{308}@example.com")
        .await
        .assert_status(409);
    register_as(&server, "strasse", "strasse@example.de")
        .await
        .assert_status(200);
    register_as(&server, "strasse2", "STRAßE@example.de")
        .await
        .assert_status(409);
    // Login by any spelling of the address.
    register_as(&server, "asa", "åsa@example.com")
        .await
        .assert_status(200);
    server
        .login("ÅSA@EXAMPLE.COM", TEST_PASSWORD)
        .await
        .assert_status(200);
    server
        .login("zoe\u{308}@EXAMPLE.com", TEST_PASSWORD)
        .await
        .assert_status(200);
    // Accents stay distinct: two accounts, neither logs into the other.
    register_as(&server, "alice", "alice@example.com")
        .await
        .assert_status(200);
    let accented = register_as(&server, "alice-accent", "álice@exämple.com").await;
    accented.assert_status(200);
    let accented_id = accented.body["user_id"].as_str().unwrap().to_owned();
    let plain = server.login("alice@example.com", TEST_PASSWORD).await;
    assert_ne!(plain.body["user_id"].as_str(), Some(accented_id.as_str()));
    // Staff search uses the canonical form too.
    let admin = register_with_role(&server, "root", Role::Admin).await;
    let found = server
        .get(
            "/modo/users?search=%C3%96SSI%40EXAMPLE",
            Some(&admin.access_token),
        )
        .await;
    found.assert_status(200);
    let names: Vec<&str> = found.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ossi"]);
    // Forgot-password for another spelling reaches the account (debug mode returns its token).
    let debug = TestServer::start_with(h, &[("EMAIL_DEBUG", "true")]).await;
    register_as(&debug, "asa", "åsa@example.com")
        .await
        .assert_status(200);
    let forgot = debug
        .post("/auth/forgot", None, json!({"email": "ÅSA@example.com"}))
        .await;
    assert!(forgot.body["token"].is_string(), "{}", forgot.body);
    // A changed address is found by its new canonical form only.
    let user = debug.register("mover").await;
    debug
        .patch(
            "/users/me/email",
            Some(&user.access_token),
            json!({"email": "Möver@example.com"}),
        )
        .await
        .assert_status(200);
    debug
        .login("MÖVER@EXAMPLE.COM", TEST_PASSWORD)
        .await
        .assert_status(200);
    debug
        .login("mover@example.com", TEST_PASSWORD)
        .await
        .assert_status(401);
}

/// `POST /auth/forgot` for `email`.
async fn forgot(server: &TestServer, email: &str) -> Reply {
    server
        .post("/auth/forgot", None, json!({"email": email}))
        .await
}

async fn forgot_token(server: &TestServer, email: &str) -> String {
    let reply = forgot(server, email).await;
    reply.assert_status(200);
    reply.body["token"].as_str().unwrap().to_owned()
}

async fn reset(server: &TestServer, token: &str, password: &str) -> u16 {
    server
        .post(
            "/auth/reset",
            None,
            json!({"token": token, "new_password": password}),
        )
        .await
        .status
        .as_u16()
}

pub async fn reset_links_die_when_one_is_used_or_the_password_changes(h: &Harness) {
    let server = TestServer::start_with(h, &[("EMAIL_DEBUG", "true")]).await;
    let user = server.register("resetter").await;
    // Two resets requested; the newer is used; the older no longer works.
    let older = forgot_token(&server, &user.email).await;
    let newer = forgot_token(&server, &user.email).await;
    assert_eq!(reset(&server, &newer, "second-password-1").await, 200);
    assert_eq!(reset(&server, &older, "attacker-password").await, 400);
    server
        .login(&user.email, "second-password-1")
        .await
        .assert_status(200);
    // A link issued before an in-session password change dies with the change.
    let login = server.login(&user.email, "second-password-1").await;
    let access = login.body["access_token"].as_str().unwrap().to_owned();
    let before_change = forgot_token(&server, &user.email).await;
    server
        .post(
            "/users/me/password",
            Some(&access),
            json!({"old_password": "second-password-1", "new_password": "third-password-1"}),
        )
        .await
        .assert_status(200);
    assert_eq!(
        reset(&server, &before_change, "attacker-password").await,
        400
    );
    server
        .login(&user.email, "third-password-1")
        .await
        .assert_status(200);
}

fn link_in(message: &CaughtMessage, prefix: &str) -> String {
    message
        .text
        .split_whitespace()
        .find(|w| w.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} link in {}", message.text))
        .to_owned()
}

async fn mail_server(h: &Harness, catcher: &SmtpCatcher, extra: &[(&str, &str)]) -> TestServer {
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

async fn wait_for(catcher: &SmtpCatcher, count: usize) -> Vec<CaughtMessage> {
    let messages = catcher
        .wait_for_messages(count, StdDuration::from_secs(10))
        .await;
    assert!(
        messages.len() >= count,
        "{} of {count} mails",
        messages.len()
    );
    messages
}

pub async fn email_change_mails_a_revert_link_to_the_old_address(h: &Harness) {
    let catcher = SmtpCatcher::start().await.unwrap();
    let server = mail_server(h, &catcher, &[]).await;
    let owner = server.register("owner").await;
    // With the access token alone (what the frontend's form sends): `{email}`.
    let changed = server
        .patch(
            "/users/me/email",
            Some(&owner.access_token),
            json!({"email": "thief@example.com"}),
        )
        .await;
    changed.assert_status(200);
    assert_eq!(changed.body["email"], "thief@example.com");
    let notice = &wait_for(&catcher, 1).await[0];
    assert_eq!(notice.recipients, ["owner@example.com"]);
    assert!(notice.text.contains("thief@example.com"));
    let base = format!(
        "http://localhost:{}/auth/email/revert?token=",
        server.app.config().port
    );
    let link = link_in(notice, &base);
    let token = link[base.len()..].to_owned();
    // The thief logs in through the new address (as they could after a reset sent there).
    let thief = server.login("thief@example.com", TEST_PASSWORD).await;
    thief.assert_status(200);
    let thief_refresh = thief.body["refresh_token"].as_str().unwrap().to_owned();

    // Opening the link (as a mail scanner would) changes nothing; it shows a form.
    let page = server
        .http
        .get(server.url(&format!("/auth/email/revert?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\" action=\"revert\">"),
        "{html}"
    );
    assert!(html.contains(&token));
    assert_eq!(
        server
            .get("/users/me", thief.body["access_token"].as_str())
            .await
            .body["email"],
        "thief@example.com"
    );
    // The button posts the form.
    let reverted = server
        .http
        .post(server.url("/auth/email/revert"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("token", &token)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(reverted.status(), 200);
    assert!(reverted.text().await.unwrap().contains("restored"));
    // The address is back, every session is gone, and both addresses are told.
    server
        .login("owner@example.com", TEST_PASSWORD)
        .await
        .assert_status(200);
    for refresh in [&owner.refresh_token, &thief_refresh] {
        server
            .post("/auth/refresh", None, json!({"refresh_token": refresh}))
            .await
            .assert_status(401);
    }
    let messages = wait_for(&catcher, 3).await;
    let mut told: Vec<&str> = messages[1..]
        .iter()
        .map(|m| m.recipients[0].as_str())
        .collect();
    told.sort_unstable();
    assert_eq!(told, ["owner@example.com", "thief@example.com"]);
    assert!(messages[1..].iter().all(|m| m.subject.contains("restored")));
    // Single use, as JSON too.
    let again = server
        .post("/auth/email/revert", None, json!({"token": token}))
        .await;
    again.assert_status(400);
    // Another spelling of the same address is not a change: no notice.
    let login = server.login("owner@example.com", TEST_PASSWORD).await;
    let access = login.body["access_token"].as_str().unwrap().to_owned();
    server
        .patch(
            "/users/me/email",
            Some(&access),
            json!({"email": "OWNER@example.com"}),
        )
        .await
        .assert_status(200);
    // Links live 7 days.
    server
        .patch(
            "/users/me/email",
            Some(&access),
            json!({"email": "late@example.com"}),
        )
        .await
        .assert_status(200);
    let late = wait_for(&catcher, 4).await;
    let late_notice = late
        .iter()
        .find(|m| m.text.contains("late@example.com") && m.subject.contains("changed"))
        .expect("the notice of the second change");
    let late_link = link_in(late_notice, &base);
    server
        .clock
        .advance(Duration::days(7) + Duration::seconds(1));
    server
        .post(
            "/auth/email/revert",
            None,
            json!({"token": &late_link[base.len()..]}),
        )
        .await
        .assert_status(400);
    // The page works without a server-side state of its own: a missing token is a 422.
    server
        .get("/auth/email/revert", None)
        .await
        .assert_status(422);
}

pub async fn a_later_revert_cannot_undo_an_earlier_one(h: &Harness) {
    let catcher = SmtpCatcher::start().await.unwrap();
    let server = mail_server(
        h,
        &catcher,
        &[("EMAIL_REVERT_URL_BASE", "https://api.example/r?t=")],
    )
    .await;
    let owner = server.register("chain").await;
    for email in ["b@example.com", "c@example.com"] {
        server
            .patch(
                "/users/me/email",
                Some(&owner.access_token),
                json!({"email": email}),
            )
            .await
            .assert_status(200);
    }
    let messages = wait_for(&catcher, 2).await;
    let token_of = |to: &str| {
        let message = messages.iter().find(|m| m.recipients[0] == to).unwrap();
        link_in(message, "https://api.example/r?t=")["https://api.example/r?t=".len()..].to_owned()
    };
    let (to_owner, to_b) = (token_of("chain@example.com"), token_of("b@example.com"));
    // The thief reverts to their first address; the owner's older link still restores theirs.
    for token in [&to_b, &to_owner] {
        server
            .post("/auth/email/revert", None, json!({"token": token}))
            .await
            .assert_status(200);
    }
    let me = server.login("chain@example.com", TEST_PASSWORD).await;
    me.assert_status(200);
    // ...and after it, the thief's link is spent.
    server
        .post("/auth/email/revert", None, json!({"token": to_b}))
        .await
        .assert_status(400);
}

pub async fn only_admins_change_other_users_email(h: &Harness) {
    let catcher = SmtpCatcher::start().await.unwrap();
    let server = mail_server(h, &catcher, &[]).await;
    let admin = register_with_role(&server, "root", Role::Admin).await;
    let moderator = register_with_role(&server, "mod", Role::Moderator).await;
    let other_moderator = register_with_role(&server, "mod2", Role::Moderator).await;
    let path = format!("/modo/users/{}", other_moderator.id);
    let by_moderator = server
        .patch(
            &path,
            Some(&moderator.access_token),
            json!({"username": "mod2", "email": "mine@example.com"}),
        )
        .await;
    by_moderator.assert_status(403);
    // The moderation page's edit: unchanged address (any spelling), new username.
    server
        .patch(
            &path,
            Some(&moderator.access_token),
            json!({"username": "renamed", "email": "MOD2@example.com"}),
        )
        .await
        .assert_status(200);
    server
        .patch(
            &path,
            Some(&admin.access_token),
            json!({"username": "renamed", "email": "new-mod2@example.com"}),
        )
        .await
        .assert_status(200);
    let notice = &wait_for(&catcher, 1).await[0];
    assert_eq!(notice.recipients, ["mod2@example.com"]);
    assert!(notice.text.contains("/auth/email/revert?token="));
    let shown = server.get(&path, Some(&admin.access_token)).await;
    assert_eq!(shown.body["email"], "new-mod2@example.com");
    assert_eq!(shown.body["username"], "renamed");
}

pub async fn mail_budgets_limit_each_address_and_ip(h: &Harness) {
    let catcher = SmtpCatcher::start().await.unwrap();
    let server = mail_server(
        h,
        &catcher,
        &[
            ("MAIL_MAX_PER_ADDRESS", "2"),
            ("MAIL_MAX_PER_IP", "25"),
            ("METRICS", "true"),
        ],
    )
    .await;
    server.register("victim").await;
    server.register("flooder").await;
    // 20 requests for one address at the same instant: exactly 2 pass.
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let request = server
                .http
                .post(server.url("/auth/forgot"))
                .json(&json!({"email": "FLOODER@example.com"}));
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                let response = request.send().await.unwrap();
                let retry = response.headers().get("retry-after").is_some();
                (response.status().as_u16(), retry)
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for client in clients {
        statuses.push(client.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|(s, _)| *s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|(s, retry)| *s == 200 || (*s == 429 && *retry))
    );
    // The victim's own reset still goes out: one budget per address.
    server
        .post("/auth/forgot", None, json!({"email": "victim@example.com"}))
        .await
        .assert_status(200);
    let delivered = wait_for(&catcher, 3).await;
    assert!(
        delivered
            .iter()
            .any(|m| m.recipients == ["victim@example.com"])
    );
    // The client IP has its own budget across addresses: 25 requests in all, refused ones
    // included (20 + 1 so far).
    for n in 0..4 {
        forgot(&server, &format!("ghost{n}@example.com"))
            .await
            .assert_status(200);
    }
    let spent = forgot(&server, "ghost@example.com").await;
    spent.assert_status(429);
    assert_eq!(
        spent.detail(),
        "Too many e-mails requested, try again later"
    );
    // Both limits refill after their window.
    server.clock.advance(Duration::hours(1));
    server
        .post(
            "/auth/forgot",
            None,
            json!({"email": "flooder@example.com"}),
        )
        .await
        .assert_status(200);
    let metrics = crate::metrics::scrape(&server.http, &server.url("")).await;
    for line in [
        "melodyhue_mail_requests_refused_total{budget=\"address\"} 18",
        "melodyhue_mail_requests_refused_total{budget=\"ip\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(
        metrics.contains("melodyhue_mail_messages_total{outcome=\"sent\"}"),
        "{metrics}"
    );
}

/// `MAIL_MAX_PER_IP=0` turns the client network's mail budget off (behind a proxy that sends
/// no client address); each address keeps its own.
pub async fn the_mail_network_budget_can_be_turned_off(h: &Harness) {
    let catcher = SmtpCatcher::start().await.unwrap();
    let server = mail_server(
        h,
        &catcher,
        &[("MAIL_MAX_PER_ADDRESS", "1"), ("MAIL_MAX_PER_IP", "0")],
    )
    .await;
    for n in 0..30 {
        forgot(&server, &format!("ghost{n}@example.com"))
            .await
            .assert_status(200);
    }
    forgot(&server, "ghost0@example.com")
        .await
        .assert_status(429);
}

pub async fn expired_tokens_are_purged_by_the_daily_job(h: &Harness) {
    let server = TestServer::start_with(h, &[("EMAIL_DEBUG", "true")]).await;
    let user = server.register("purged").await;
    forgot_token(&server, &user.email).await;
    forgot_token(&server, &user.email).await;
    server.clock.advance(Duration::hours(2));
    let jobs = server.app.jobs().spawn_background_jobs();
    let mut reports = jobs.reports();
    let report = *reports.wait_for(|r| r.runs >= 1).await.unwrap();
    assert_eq!(report.expired_tokens, 2);
}

pub async fn ban_until_is_read_as_pydantic_reads_datetimes(h: &Harness) {
    let server = TestServer::start(h).await;
    let moderator = register_with_role(&server, "mod", Role::Moderator).await;
    let cases: [(Value, &str); 5] = [
        // The frontend's datetime-local value: no seconds, no zone (UTC).
        (json!("2099-12-01T20:25"), "2099-12-01T20:25:00.000Z"),
        (
            json!("2099-12-01 20:25:30.5+02:00"),
            "2099-12-01T18:25:30.500Z",
        ),
        (json!("2099-12-01"), "2099-12-01T00:00:00.000Z"),
        (json!(4_100_000_000_i64), "2099-12-03T16:53:20.000Z"),
        (json!("4100000000000"), "2099-12-03T16:53:20.000Z"),
    ];
    for (n, (until, shown)) in cases.into_iter().enumerate() {
        let user = server.register(&format!("banned{n}")).await;
        let ban = server
            .post(
                &format!("/modo/users/{}/ban", user.id),
                Some(&moderator.access_token),
                json!({"reason": "testing", "until": until}),
            )
            .await;
        ban.assert_status(200);
        let seen = server
            .get(
                &format!("/modo/users/{}", user.id),
                Some(&moderator.access_token),
            )
            .await;
        assert_eq!(seen.body["ban_until"], shown, "{until}");
        assert_eq!(seen.body["is_banned"], true);
    }
    let user = server.register("notbanned").await;
    let bad = server
        .post(
            &format!("/modo/users/{}/ban", user.id),
            Some(&moderator.access_token),
            json!({"reason": "testing", "until": "next week"}),
        )
        .await;
    bad.assert_status(422);
    assert_eq!(bad.body["detail"][0]["type"], "datetime_from_date_parsing");
}

/// Every place the real frontend reads a status or a `detail` gets what it looks for.
pub async fn messages_land_where_the_frontend_matches_them(h: &Harness) {
    let server = TestServer::start(h).await;
    let user: TestUser = server.register("taken").await;
    // register.component.ts: "This email is already in use".
    let taken = register_as(&server, "again", "TAKEN@example.com").await;
    taken.assert_status(409);
    assert!(frontend_sees_email_taken(taken.detail()));
    // profile e-mail change and the moderation edit say the same.
    let other = server.register("other").await;
    let change = server
        .patch(
            "/users/me/email",
            Some(&other.access_token),
            json!({"email": user.email}),
        )
        .await;
    change.assert_status(409);
    assert!(frontend_sees_email_taken(change.detail()));
    // auth-refresh.interceptor.ts: a ban is 401/403/423 with the header or "banned" in the body.
    let moderator = register_with_role(&server, "mod", Role::Moderator).await;
    server
        .post(
            &format!("/modo/users/{}/ban", other.id),
            Some(&moderator.access_token),
            json!({"reason": "testing"}),
        )
        .await
        .assert_status(200);
    let banned = server.login(&other.email, TEST_PASSWORD).await;
    banned.assert_status(403);
    assert_eq!(banned.headers["x-account-banned"], "true");
    assert!(banned.detail().to_lowercase().contains("banned"));
    // An expired or missing access token is 401, which the interceptor answers with a refresh.
    server.get("/users/me", None).await.assert_status(401);
    // reset.component.ts: an invalid token is a 400.
    server
        .post(
            "/auth/reset",
            None,
            json!({"token": "nope", "new_password": "long-enough-1"}),
        )
        .await
        .assert_status(400);
    // login.component.ts and otp.component.ts: wrong credentials 401, throttling 429.
    server
        .login(&user.email, "wrong-password")
        .await
        .assert_status(401);
}

/// Outstanding links raced: two reset tokens and one revert token used at the same instant
/// from pre-connected clients. Exactly one reset wins; the revert works once.
pub async fn racing_links_work_once(h: &Harness) {
    let catcher = SmtpCatcher::start().await.unwrap();
    let server = mail_server(h, &catcher, &[("EMAIL_DEBUG", "true")]).await;
    let user = server.register("racer").await;
    let tokens = [
        forgot_token(&server, &user.email).await,
        forgot_token(&server, &user.email).await,
    ];
    server
        .patch(
            "/users/me/email",
            Some(&user.access_token),
            json!({"email": "racer2@example.com"}),
        )
        .await
        .assert_status(200);
    // The two reset mails and the notice.
    let mails = wait_for(&catcher, 3).await;
    let notice = mails
        .iter()
        .find(|m| m.subject.contains("was changed"))
        .expect("the notice");
    let base = format!(
        "http://localhost:{}/auth/email/revert?token=",
        server.app.config().port
    );
    let revert = link_in(notice, &base)[base.len()..].to_owned();

    let mut requests = Vec::new();
    for (n, token) in tokens.iter().enumerate() {
        requests.push(
            server
                .http
                .post(server.url("/auth/reset"))
                .json(&json!({"token": token, "new_password": format!("racing-password-{n}")})),
        );
    }
    for _ in 0..8 {
        requests.push(
            server
                .http
                .post(server.url("/auth/email/revert"))
                .json(&json!({"token": revert})),
        );
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                request.send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let (resets, reverts) = statuses.split_at(2);
    // A revert may run before or after the resets; if first, it invalidates both.
    assert!(
        resets.iter().filter(|s| **s == 200).count() <= 1,
        "{statuses:?}"
    );
    assert!(
        resets.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
    assert_eq!(
        reverts.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        reverts.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
    // The address is back; exactly one of the passwords (or the old one) works.
    let working = ["racing-password-0", "racing-password-1", TEST_PASSWORD];
    let mut logged_in = 0;
    for password in working {
        if server.login("racer@example.com", password).await.status == 200 {
            logged_in += 1;
        }
    }
    assert_eq!(logged_in, 1);
}

/// Two reset links used at the same instant: exactly one sets the password.
pub async fn concurrent_resets_let_one_link_win(h: &Harness) {
    let server = TestServer::start_with(h, &[("EMAIL_DEBUG", "true")]).await;
    let user = server.register("twice").await;
    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(forgot_token(&server, &user.email).await);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(tokens.len()));
    let tasks: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(n, token)| {
            let request = server
                .http
                .post(server.url("/auth/reset"))
                .json(&json!({"token": token, "new_password": format!("concurrent-password-{n}")}));
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                request.send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );
}
