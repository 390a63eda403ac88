//! The core HTTP suite, served by hyper over a real socket.

use melodyhue_core::App;
use melodyhue_testkit::suite::ServeFuture;

fn serve(app: App, listener: tokio::net::TcpListener) -> ServeFuture {
    Box::pin(melodyhue_hyper::serve(
        app,
        listener,
        std::future::pending(),
    ))
}

melodyhue_testkit::http_suite!(serve);
