//! A program with its own hyper accept loop that hands every request to MelodyHue.
//!
//! `cargo run -p melodyhue-examples --bin hyper_accept_loop`, then `curl localhost:PORT/health`.

use std::convert::Infallible;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (app, listener) = melodyhue_examples::demo().await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        // A failed accept ends this example; `melodyhue_hyper::serve` pauses and goes on.
        let (stream, peer) = listener.accept().await?;
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let app = app.clone();
                async move {
                    Ok::<_, Infallible>(melodyhue_hyper::handle(&app, request, Some(peer)).await)
                }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            if let Err(err) = connection.await {
                eprintln!("connection from {peer}: {err}");
            }
        });
    }
}
