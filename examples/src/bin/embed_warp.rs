//! A warp program with its own routes that mounts MelodyHue under `/api`.
//!
//! `cargo run -p melodyhue-examples --bin embed_warp`, then `curl localhost:PORT/hello` and
//! `curl localhost:PORT/api/health`.

use warp::Filter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (app, listener) = melodyhue_examples::demo().await?;
    println!("listening on http://{}", listener.local_addr()?);
    let hello = warp::path!("hello").map(|| "hello from the host program");
    let routes = hello.or(warp::path("api").and(melodyhue_warp::routes(app)));
    warp::serve(routes).incoming(listener).run().await;
    Ok(())
}
