//! TOTP two-factor authentication: setup, the two-step login, codes and tickets, and turning it
//! off with a code or by e-mail.

use std::time::Duration as StdDuration;

use chrono::Duration;
use serde_json::json;

use super::{code, second_step, smtp_server, ticket, user_with_two_factor, wrong_code};
use crate::smtp::SmtpCatcher;
use crate::suite::{Harness, TEST_ENCRYPTION_KEY, TEST_PASSWORD, TestServer};
use melodyhue_core::api::{ACCESS_COOKIE, REFRESH_COOKIE};
use melodyhue_core::model::{Ban, new_id};
use melodyhue_core::secrets::SecretBox;

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
