//! Password reset by e-mail: the links, their expiry, debug mode, and mail that fails.

use std::time::Duration as StdDuration;

use chrono::Duration;
use serde_json::json;

use super::{smtp_server, user_with_two_factor};
use crate::smtp::SmtpCatcher;
use crate::suite::{Harness, TEST_PASSWORD, TestServer};

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
