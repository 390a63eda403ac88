//! Account security: TOTP 2FA, the two-step login, password reset and 2FA-disable by e-mail,
//! login throttling and the admission of password hashing: the helpers the parts share.

use chrono::Duration;
use serde_json::json;

use super::{Harness, Reply, TEST_PASSWORD, TestServer, TestUser};
use crate::smtp::SmtpCatcher;
use melodyhue_core::auth::totp;

mod hashing;
mod password_reset;
mod throttling;
mod two_factor;

pub use hashing::*;
pub use password_reset::*;
pub use throttling::*;
pub use two_factor::*;

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

/// The argon2 computations the server made so far.
fn computations(server: &TestServer) -> u64 {
    server.app.password_hasher().computations()
}

/// A six-digit code that none of the steps around now accepts.
fn wrong_code(server: &TestServer, secret: &str) -> String {
    let valid: Vec<String> = (-2..=2).map(|step| code(server, secret, step)).collect();
    (0..10)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !valid.contains(c))
        .unwrap()
}
