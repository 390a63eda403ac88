//! The core HTTP suite, served by hyper over a real socket.

use melodyhue_core::App;
use melodyhue_core::api::suite::ServeFuture;

fn serve(app: App, listener: tokio::net::TcpListener) -> ServeFuture {
    Box::pin(melodyhue_hyper::serve(
        app,
        listener,
        std::future::pending(),
    ))
}

melodyhue_core::http_suite!(serve);
