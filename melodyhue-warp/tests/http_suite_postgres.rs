//! The core HTTP suite, served by warp, on PostgreSQL (a fresh database per case on the server
//! of `MELODYHUE_TEST_POSTGRES_URL`; ignored without it, failed under `CI=true`).

use melodyhue_core::App;
use melodyhue_testkit::suite::{Backend, ServeFuture};

fn serve(app: App, listener: tokio::net::TcpListener) -> ServeFuture {
    Box::pin(melodyhue_warp::serve(app, listener, std::future::pending()))
}

melodyhue_testkit::http_suite!(serve, Backend::Postgres);
