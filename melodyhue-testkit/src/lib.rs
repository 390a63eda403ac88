#![doc = include_str!("../README.md")]

pub mod cluster;
pub mod conformance;
pub mod database;
pub mod fake_spotify;
pub mod metrics;
pub mod smtp;
pub mod suite;

use std::future::Future;

pub use libtest_mimic::Trial;
use libtest_mimic::{Arguments, Completion};

/// Whether this run is CI (`CI=true`), where nothing may be skipped.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Something a test needs from outside the process (a server, a tool), and whether this run
/// has it. A [`trial`] whose needs are not all met is reported as ignored, with the reason
/// (`needs MELODYHUE_TEST_POSTGRES_URL`), and fails instead under `CI=true`.
#[derive(Debug, Clone)]
pub struct Need {
    what: String,
    met: bool,
}

impl Need {
    /// A non-empty environment variable, e.g. `MELODYHUE_TEST_POSTGRES_URL`.
    pub fn var(name: &str) -> Need {
        Need {
            what: name.to_owned(),
            met: var(name).is_some(),
        }
    }

    /// Something found some other way: `what` names it in the ignore reason.
    pub fn found(what: &str, met: bool) -> Need {
        Need {
            what: what.to_owned(),
            met,
        }
    }

    /// Whether this run has it.
    pub fn is_met(&self) -> bool {
        self.met
    }
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

/// The value of a non-empty environment variable.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// The value of `name`, which a test declared as a [`Need`].
///
/// # Panics
/// When it is unset: the test did not declare it, or ran without its needs.
pub fn needed_var(name: &str) -> String {
    var(name).unwrap_or_else(|| panic!("{name} is not set; declare it with `Need::var`"))
}

/// A test named `name` that runs `test` on a fresh multi-threaded runtime (two workers, like
/// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`) when every need is met. A
/// panic fails it. An unmet need ignores it with the reason, or fails it under `CI=true`.
pub fn trial<F, Fut>(name: impl Into<String>, needs: Vec<Need>, test: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    Trial::ignorable_test(name, move || {
        if let Some(missing) = needs.iter().find(|need| !need.met) {
            let reason = format!("needs {missing}");
            if is_ci() {
                return Err(
                    format!("{reason}, but CI=true: CI runs every test (.ci/run sets it)").into(),
                );
            }
            return Ok(Completion::ignored_with(reason));
        }
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|err| format!("test runtime: {err}"))?
            .block_on(test());
        Ok(Completion::Completed)
    })
}

/// Runs `trials` as `cargo test` runs a test binary (filters, `--list`, `--test-threads`...),
/// for test targets with `harness = false`.
pub fn run(trials: Vec<Trial>) -> std::process::ExitCode {
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}
