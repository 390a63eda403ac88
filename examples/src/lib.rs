//! Shared helpers of the MelodyHue example programs.
//!
//! - [`memory_store`]: a storage backend of your own, checked by the conformance kit.

pub mod memory_store;

use std::error::Error;

use melodyhue_core::App;
use melodyhue_core::config::Config;
use melodyhue_core::secrets::SecretBox;
use tokio::net::TcpListener;

/// A MelodyHue app on an in-memory database with secrets made up for this run, and a listener
/// on 127.0.0.1 at `PORT` (any free port when unset). Everything is gone when the program
/// exits: a demonstration, not a deployment.
pub async fn demo() -> Result<(App, TcpListener), Box<dyn Error>> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "0".to_owned());
    let config = Config::from_vars([
        ("DATABASE_URL", "sqlite::memory:".to_owned()),
        ("PORT", port),
        ("SECRET_KEY", SecretBox::generate_key()),
        ("ENCRYPTION_KEY", SecretBox::generate_key()),
    ])?;
    let listener = TcpListener::bind(config.listen_address()).await?;
    let app = App::connect(config).await?;
    Ok((app, listener))
}

/// The root README's Rust snippets, compiled (and run where they do not bind ports) as tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
