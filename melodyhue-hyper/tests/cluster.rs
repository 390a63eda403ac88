//! Three nodes served by hyper over one Redis and one PostgreSQL database (ignored without
//! `MELODYHUE_TEST_REDIS_URL` and `MELODYHUE_TEST_POSTGRES_URL`, failed under `CI=true`).

use melodyhue_core::App;
use melodyhue_testkit::suite::ServeFuture;

fn serve(app: App, listener: tokio::net::TcpListener) -> ServeFuture {
    Box::pin(melodyhue_hyper::serve(
        app,
        listener,
        std::future::pending(),
    ))
}

melodyhue_testkit::cluster_suite!(serve);
