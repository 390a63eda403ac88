//! `melodyhue promote EMAIL --role ROLE`, run as a process against a SQLite database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use melodyhue_core::App;
use melodyhue_core::auth::password::HashParams;
use melodyhue_core::config::Config;
use melodyhue_core::model::Role;
use melodyhue_core::service::Registration;

const JWT_SECRET: &str = "promote-test-secret-0123456789abcdef";
const ENCRYPTION_KEY: &str = "Wn2q0n7mCw3mYQ2Yf1pQ0v8lGk9cB3xJ5rT7uV9wX0E=";

fn vars(dir: &Path) -> Vec<(String, String)> {
    vec![
        ("MELODYHUE_DATA_DIR".into(), dir.display().to_string()),
        (
            "DATABASE_URL".into(),
            format!("sqlite:{}/melodyhue.db", dir.display()),
        ),
        ("JWT_SECRET".into(), JWT_SECRET.into()),
        ("ENCRYPTION_KEY".into(), ENCRYPTION_KEY.into()),
        ("LOG_LEVEL".into(), "warn".into()),
    ]
}

async fn app(dir: &Path) -> App {
    let mut config = Config::from_vars(vars(dir)).unwrap();
    config.password_hashing = HashParams::insecure_fast_for_tests();
    App::connect(config).await.unwrap()
}

/// Runs the binary with only the test's configuration in its environment.
fn melodyhue(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_melodyhue"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(vars(dir))
        .output()
        .expect("the melodyhue binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn role_of(dir: &Path, email: &str) -> Role {
    app(dir)
        .await
        .store()
        .user_by_email(email)
        .await
        .unwrap()
        .unwrap()
        .role
}

#[tokio::test]
async fn promote_changes_roles_and_keeps_the_last_admin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let app = app(path).await;
    for name in ["ada", "bob"] {
        app.accounts()
            .register(
                Registration {
                    username: name.parse().unwrap(),
                    email: format!("{name}@example.com").parse().unwrap(),
                    password: "correct-horse-42".parse().unwrap(),
                },
                None,
            )
            .await
            .unwrap();
    }
    drop(app);

    let made = melodyhue(path, &["promote", "ADA@example.com", "--role", "admin"]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    assert!(
        text(&made.stdout).contains("ada@example.com (ada) is now admin"),
        "{}",
        text(&made.stdout)
    );
    assert_eq!(role_of(path, "ada@example.com").await, Role::Admin);

    let moderator = melodyhue(path, &["promote", "bob@example.com", "--role", "moderator"]);
    assert!(moderator.status.success(), "{}", text(&moderator.stderr));
    assert_eq!(role_of(path, "bob@example.com").await, Role::Moderator);

    let last = melodyhue(path, &["promote", "ada@example.com", "--role", "user"]);
    assert_eq!(last.status.code(), Some(1));
    assert!(
        text(&last.stderr).contains("is the last admin"),
        "{}",
        text(&last.stderr)
    );
    assert_eq!(role_of(path, "ada@example.com").await, Role::Admin);

    let unknown = melodyhue(path, &["promote", "nobody@example.com", "--role", "admin"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("no account has the e-mail address"),
        "{}",
        text(&unknown.stderr)
    );

    let bad_role = melodyhue(path, &["promote", "bob@example.com", "--role", "root"]);
    assert_eq!(bad_role.status.code(), Some(2), "clap's usage error");
    assert!(text(&bad_role.stderr).contains("possible values: admin, moderator, user"));
    assert_eq!(role_of(path, "bob@example.com").await, Role::Moderator);
}
