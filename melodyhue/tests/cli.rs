//! The `melodyhue` binary: choosing the frontend, by flag or variable, and refusing a bad one;
//! `gen-keys` and `health-check`; the node's id on every log line.
// A test binary: a failed expect in a helper is a failed test.
#![allow(clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Bounds the waits below so that a broken binary fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(60);

/// `melodyhue` with `args`, in an empty directory, with a fresh data directory, on a free port,
/// logging JSON lines to stdout.
fn melodyhue(directory: &tempfile::TempDir, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_melodyhue"));
    command
        .args(args)
        .current_dir(directory.path())
        .env_clear()
        .env("MELODYHUE_DATA_DIR", directory.path().join("data"))
        .env("PORT", "0")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Reads the log until the server says where it listens; its `address` and `frontend`.
async fn listening(child: &mut Child) -> (String, String) {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("log line") {
            let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let fields = &entry["fields"];
            if fields["message"] == "MelodyHue listening" {
                let field = |name: &str| fields[name].as_str().expect(name).to_owned();
                return (field("address"), field("frontend"));
            }
        }
        panic!("melodyhue exited without listening");
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("melodyhue starts")
}

async fn serves_with(args: &[&str], variable: Option<&str>, expected: &str) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let mut command = melodyhue(&directory, args);
    if let Some(frontend) = variable {
        command.env("MELODYHUE_FRONTEND", frontend);
    }
    let mut child = command.spawn().expect("melodyhue runs");
    let (address, frontend) = listening(&mut child).await;
    assert_eq!(frontend, expected);
    let response = reqwest::get(format!("http://{address}/health"))
        .await
        .expect("request reaches the server");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), r#"{"status":"ok"}"#);
}

#[tokio::test]
async fn warp_is_the_default() {
    serves_with(&[], None, "Warp").await;
}

#[tokio::test]
async fn the_flag_chooses_the_frontend() {
    serves_with(&["serve", "--frontend", "hyper"], None, "Hyper").await;
    serves_with(&["serve", "--frontend", "warp"], Some("hyper"), "Warp").await;
}

#[tokio::test]
async fn the_variable_chooses_the_frontend_of_plain_melodyhue_and_serve() {
    serves_with(&[], Some("hyper"), "Hyper").await;
    serves_with(&["serve"], Some("hyper"), "Hyper").await;
}

#[tokio::test]
async fn an_unknown_frontend_is_one_line_naming_the_variable() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let output = melodyhue(&directory, &[])
        .env("MELODYHUE_FRONTEND", "http")
        .output()
        .await
        .expect("melodyhue runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("melodyhue: "), "{stderr}");
    for expected in ["MELODYHUE_FRONTEND", "'http'", "warp", "hyper"] {
        assert!(
            stderr.contains(expected),
            "{expected} missing from {stderr}"
        );
    }
}

/// The whole log of a server named `node_id` that answers two requests and stops on SIGTERM.
async fn log_of_a_short_run(log_format: &str, node_id: &str) -> Vec<String> {
    let directory = tempfile::tempdir().expect("temporary directory");
    let mut child = melodyhue(&directory, &[])
        .env("LOG_FORMAT", log_format)
        // Debug lines come from the spawned tasks too (connections, background jobs).
        .env("LOG_LEVEL", "debug")
        .env("NODE_ID", node_id)
        .spawn()
        .expect("melodyhue runs");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut log = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("log line") {
            let listening = line.contains("MelodyHue listening");
            log.push(line);
            if listening {
                return;
            }
        }
        panic!("melodyhue exited without listening: {log:?}");
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("melodyhue starts");
    let address = log
        .last()
        .and_then(|line| line.split("address").nth(1))
        .and_then(|rest| {
            rest.trim_start_matches(['"', ':', '='])
                .split(['"', ' '])
                .next()
        })
        .expect("the listening line names the address")
        .to_owned();
    for path in ["/health", "/no-such-page"] {
        reqwest::get(format!("http://{address}{path}"))
            .await
            .expect("request reaches the server");
    }
    let pid = child.id().expect("running").to_string();
    let stopped = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(stopped.success());
    let rest = async {
        while let Some(line) = lines.next_line().await.expect("log line") {
            log.push(line);
        }
    };
    tokio::time::timeout(PATIENCE, rest)
        .await
        .expect("melodyhue stops");
    log
}

#[tokio::test]
async fn every_json_log_line_names_the_node() {
    let log = log_of_a_short_run("json", "node \"one\"").await;
    let entries: Vec<Value> = log
        .iter()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
        .collect();
    for entry in &entries {
        assert_eq!(entry["node_id"], "node \"one\"", "{entry}");
    }
    let messages: Vec<&str> = entries
        .iter()
        .filter_map(|entry| entry["fields"]["message"].as_str())
        .collect();
    for expected in ["MelodyHue listening", "request", "stopped"] {
        assert!(messages.contains(&expected), "{expected} in {messages:?}");
    }
}

#[tokio::test]
async fn every_text_log_line_names_the_node() {
    let log = log_of_a_short_run("text", "edge-7").await;
    assert!(log.len() >= 4, "{log:?}");
    for line in &log {
        assert!(line.starts_with("node_id=edge-7 "), "{line}");
    }
    assert!(
        log.iter().any(|line| line.contains("route=\"/health\"")),
        "{log:?}"
    );
}

#[tokio::test]
async fn gen_keys_prints_fresh_usable_secrets() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let run = || async {
        let output = melodyhue(&directory, &["gen-keys"])
            .output()
            .await
            .expect("melodyhue runs");
        assert!(output.status.success());
        String::from_utf8(output.stdout).expect("UTF-8")
    };
    let (first, second) = (run().await, run().await);
    assert_ne!(first, second, "every run makes new keys");
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines.len(), 2, "{first}");
    let secret = lines[0]
        .strip_prefix("SECRET_KEY=")
        .expect("SECRET_KEY line");
    assert_eq!(secret.len(), 64);
    assert!(secret.chars().all(|c| c.is_ascii_hexdigit()));
    let key = lines[1]
        .strip_prefix("ENCRYPTION_KEY=")
        .expect("ENCRYPTION_KEY line");
    // A Fernet key: url-safe base64 of 32 bytes, which a server started with it accepts.
    assert_eq!(key.len(), 44);
    let mut command = melodyhue(&directory, &[]);
    command
        .env("MELODYHUE_ENV", "production")
        .env("SECRET_KEY", secret)
        .env("ENCRYPTION_KEY", key);
    let mut child = command.spawn().expect("melodyhue runs");
    listening(&mut child).await;
}

#[tokio::test]
async fn health_check_asks_the_configured_server() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let mut child = melodyhue(&directory, &[])
        .env("HOST", "0.0.0.0")
        .spawn()
        .expect("melodyhue runs");
    let (address, _) = listening(&mut child).await;
    let port = address.rsplit(':').next().expect("port");
    let check = |port: String| {
        let mut command = melodyhue(&directory, &["health-check"]);
        command.env("HOST", "0.0.0.0").env("PORT", port);
        command
    };
    let up = check(port.to_owned()).output().await.expect("runs");
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    // Nobody listens there any more.
    child.kill().await.expect("server stops");
    let down = check(port.to_owned()).output().await.expect("runs");
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("/health"));
}

#[tokio::test]
async fn production_refuses_weak_and_published_secrets() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let strong = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    for (variable, value, expected) in [
        ("SECRET_KEY", "x", "at least 32"),
        (
            "SECRET_KEY",
            "legacy-secret-key-0123456789abcdef",
            "example value",
        ),
        (
            "DB_PASSWORD",
            "change-me-database-password",
            "example value",
        ),
    ] {
        let mut command = melodyhue(&directory, &[]);
        command
            .env("MELODYHUE_ENV", "production")
            .env("SECRET_KEY", strong)
            .env(
                "ENCRYPTION_KEY",
                "Zm9vYmFyYmF6cXV4cXV1eGZvb2JhcmJhenF1eHF1dXg=",
            )
            .env(variable, value);
        let output = command.output().await.expect("melodyhue runs");
        assert!(!output.status.success(), "{variable}={value} is refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(variable) && stderr.contains(expected),
            "{stderr}"
        );
        assert!(
            value.len() < 8 || !stderr.contains(value),
            "the value is never printed: {stderr}"
        );
    }
}
