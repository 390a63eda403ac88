//! The OpenAPI document against real tools, over a real socket: `openapi-spec-validator`
//! validates it, and schemathesis sends generated requests to every operation, failing on a
//! 500 or on any answer the document does not describe (status, content type, body schema).
//!
//! The tools come from PyPI; `.ci/run` installs them and names them in
//! `MELODYHUE_TEST_OPENAPI_VALIDATOR` and `MELODYHUE_TEST_SCHEMATHESIS`. Without those
//! variables the tests are reported as ignored, and fail under `CI=true`.
// A test binary: a failed expect is a failed test.
#![allow(clippy::expect_used)]

use std::process::ExitCode;
use std::time::Duration;

use melodyhue_core::App;
use melodyhue_core::model::Role;
use melodyhue_testkit::suite::{Backend, Harness, ServeFuture, TestServer};
use melodyhue_testkit::{Need, needed_var, run as run_trials, trial};
use tokio::process::Command;

/// The variables naming the tools.
const VALIDATOR: &str = "MELODYHUE_TEST_OPENAPI_VALIDATOR";
const SCHEMATHESIS: &str = "MELODYHUE_TEST_SCHEMATHESIS";

fn main() -> ExitCode {
    run_trials(vec![
        trial(
            "openapi_spec_validator_accepts_the_document",
            vec![Need::var(VALIDATOR)],
            openapi_spec_validator_accepts_the_document,
        ),
        trial(
            "schemathesis_finds_nothing_the_document_does_not_describe",
            vec![Need::var(SCHEMATHESIS)],
            schemathesis_finds_nothing_the_document_does_not_describe,
        ),
    ])
}

/// Bounds a tool's run so that a hang fails the test instead of the CI job.
const PATIENCE: Duration = Duration::from_secs(600);

fn serve(app: App, listener: tokio::net::TcpListener) -> ServeFuture {
    Box::pin(melodyhue_warp::serve(app, listener, std::future::pending()))
}

fn harness() -> Harness {
    Harness {
        serve,
        backend: Backend::Sqlite,
    }
}

/// Runs a tool to completion; its status, and what it printed.
async fn run(command: &mut Command) -> (bool, String) {
    let output = tokio::time::timeout(PATIENCE, command.kill_on_drop(true).output())
        .await
        .expect("the tool finishes in time")
        .expect("the tool runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// PyPI's openapi-spec-validator accepts the document as served.
async fn openapi_spec_validator_accepts_the_document() {
    let validator = needed_var(VALIDATOR);
    // The document as served, over the socket, into a file (the validator reads files).
    let server = TestServer::start(&harness()).await;
    let served = reqwest::get(server.url("/openapi.json"))
        .await
        .expect("the document is served")
        .bytes()
        .await
        .expect("the document's body");
    let file = tempfile::Builder::new()
        .suffix(".json")
        .tempfile()
        .expect("temporary file");
    std::fs::write(file.path(), &served).expect("document written");
    let (valid, printed) = run(Command::new(validator).arg(file.path())).await;
    assert!(valid, "{printed}");
    assert!(printed.contains("OK"), "{printed}");
}

/// The schemathesis configuration. Beyond the answers (no 500; status, content type and body
/// as documented), `positive_data_acceptance` and `negative_data_rejection` hold the
/// document's request constraints to the server's: what the document allows must not be
/// refused as invalid (`422`; other refusals depend on state: a wrong code, an unknown id),
/// and what it forbids must be refused.
const CONFIG: &str = r#"
# Strings never hold the NUL character (a 404 in a path id, a 422 in a body or query string:
# PostgreSQL cannot store it), which the document does not spell out on every string.
[generation]
allow-x00 = false

[checks]
enabled = false
not_a_server_error.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
response_schema_conformance.enabled = true
negative_data_rejection.enabled = true
positive_data_acceptance.enabled = true
positive_data_acceptance.expected-statuses = ["2XX", "400", "401", "403", "404", "409", "429"]

# Logging out never fails (API.md): a body that does not fit is ignored.
[[operations]]
include-name = "POST /auth/logout"
checks.negative_data_rejection.enabled = false

# A ban's `until` must be in the future, which a schema cannot say.
[[operations]]
include-name = "POST /modo/users/{id}/ban"
checks.positive_data_acceptance.enabled = false

# Role changes go to one account of their own: ids seen in answers (the admin's own, from
# /users/me) are reused as path parameters, and a demoted admin would leave the staff
# operations tested only for their 403.
[[operations]]
include-name = "PATCH /admin/users/{id}/role"
parameters = { "path.id" = "{promoted}" }
"#;

/// PyPI's schemathesis (version 4) finds no answer the document does not describe.
async fn schemathesis_finds_nothing_the_document_does_not_describe() {
    let schemathesis = needed_var(SCHEMATHESIS);
    let server = TestServer::start(&harness()).await;
    // An admin, so that the staff routes are exercised beyond their 403.
    let user = server.register("schemathesis").await;
    server
        .app
        .moderation()
        .promote(&user.email, Role::Admin)
        .await
        .expect("promoted");
    let login = server.login(&user.email, &user.password).await;
    login.assert_status(200);
    let token = login.body["access_token"].as_str().expect("access token");
    // The only account whose role the run changes (see CONFIG).
    let promoted = server.register("promoted").await;
    // Schemathesis keeps a cache of past runs (replayed by the next run) and Hypothesis an
    // example database, both in the working directory: a fresh one makes every run start
    // from the same state and leaves nothing in the source tree.
    let scratch = tempfile::tempdir().expect("scratch directory");
    let config = scratch.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG.replace("{promoted}", &promoted.id)).expect("config written");
    let (passed, printed) = run(Command::new(schemathesis)
        .current_dir(scratch.path())
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(server.url("/openapi.json"))
        .args([
            // The checks are chosen in CONFIG: checks named here would override its
            // per-operation exceptions.
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--no-color",
            // Deleting the account would leave every later request unauthenticated.
            "--exclude-operation-id",
            "delete_users_me",
        ])
        .arg("--header")
        .arg(format!("Authorization: Bearer {token}")))
    .await;
    assert!(passed, "{printed}");
    // The summary (operations, phases, warnings) for the log of the run.
    let summary = printed.split("SUMMARY").last().unwrap_or_default();
    eprintln!("schemathesis:{summary}");
}
