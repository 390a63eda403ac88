//! MelodyHue on the example in-memory store, served by warp: `cargo run -p melodyhue-examples
//! --bin serve_in_memory`. Configured like the `melodyhue` binary (`HOST`, `PORT`, ...);
//! `DATABASE_URL` is ignored, and everything is forgotten when it stops.

use std::sync::Arc;

use melodyhue_core::App;
use melodyhue_core::config::Config;
use melodyhue_examples::memory_store::MemoryStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::from_env()?;
    config.ensure_secrets()?;
    let app = App::builder(config, Arc::new(MemoryStore::new())).build()?;
    let listener = tokio::net::TcpListener::bind(app.config().listen_address()).await?;
    println!(
        "MelodyHue (in-memory store) on http://{}",
        listener.local_addr()?
    );
    let shutdown = async {
        // Without a Ctrl-C handler, the process simply runs until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    melodyhue_warp::serve(app, listener, shutdown).await;
    Ok(())
}
