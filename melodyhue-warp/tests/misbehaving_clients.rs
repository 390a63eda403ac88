//! Clients that abort their connections are counted, not logged as errors. Alone in its test
//! binary: it installs a process-wide log subscriber.

use melodyhue_core::App;
use melodyhue_testkit::suite::{Backend, Harness, ServeFuture, transport};

fn serve(app: App, listener: tokio::net::TcpListener) -> ServeFuture {
    Box::pin(melodyhue_warp::serve(app, listener, std::future::pending()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_connections_are_counted_not_logged() {
    let harness = Harness {
        serve,
        backend: Backend::Sqlite,
    };
    transport::aborted_connections_are_counted_not_logged(&harness).await;
}
