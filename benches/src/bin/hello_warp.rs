//! The baseline of the HTTP load figures: the smallest warp server, answering `hello` on every
//! path, on `127.0.0.1:$PORT`.

use warp::Filter;

#[tokio::main]
async fn main() {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8790);
    let hello = warp::any().map(|| "hello");
    warp::serve(hello).run(([127, 0, 0, 1], port)).await;
}
