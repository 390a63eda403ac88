//! The core HTTP suite, served by warp over a real socket.

use melodyhue_core::App;
use melodyhue_testkit::suite::ServeFuture;

fn serve(app: App, listener: tokio::net::TcpListener) -> ServeFuture {
    Box::pin(melodyhue_warp::serve(app, listener, std::future::pending()))
}

melodyhue_testkit::http_suite!(serve);
