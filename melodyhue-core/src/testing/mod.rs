//! Real test doubles for what MelodyHue talks to over the network: a fake Spotify
//! (an HTTP server on loopback) and an SMTP catcher (an SMTP server on loopback that
//! keeps the messages), plus scratch databases on the machine's database servers.
//! Behind the `testing` feature; the HTTP suite uses them.

pub mod cluster;
pub mod database;
pub mod fake_spotify;
pub mod smtp;

/// Whether this run is CI (`CI=true`), where nothing may be skipped.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The value of `var`, which gives a test `what` it needs from outside (a server, a tool),
/// or `None` after printing on stderr that the test is skipped and why.
///
/// # Panics
/// Under `CI=true` when the variable is unset: CI must run every test (`.ci/run` sets them).
pub fn external(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ if is_ci() => {
            panic!("{var} is not set, but CI=true: CI must run this test (.ci/run sets it)")
        }
        _ => {
            eprintln!("skipped: {var} is not set; set it to {what} to run this test");
            None
        }
    }
}
