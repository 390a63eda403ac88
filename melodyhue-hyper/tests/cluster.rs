//! Three nodes served by hyper over one Redis and one PostgreSQL database (skipped without
//! `MELODYHUE_TEST_REDIS_URL` and `MELODYHUE_TEST_POSTGRES_URL`, except under `CI=true`).

use melodyhue_core::App;
use melodyhue_core::api::suite::ServeFuture;

fn serve(app: App, listener: tokio::net::TcpListener) -> ServeFuture {
    Box::pin(melodyhue_hyper::serve(
        app,
        listener,
        std::future::pending(),
    ))
}

melodyhue_core::cluster_suite!(serve);
