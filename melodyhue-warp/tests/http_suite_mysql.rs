//! The core HTTP suite, served by warp, on MariaDB/MySQL (a fresh database per case on the
//! server of `MELODYHUE_TEST_MYSQL_URL`; skipped without it, except under `CI=true`).

use melodyhue_core::App;
use melodyhue_core::api::suite::{Backend, ServeFuture};

fn serve(app: App, listener: tokio::net::TcpListener) -> ServeFuture {
    Box::pin(melodyhue_warp::serve(app, listener, std::future::pending()))
}

melodyhue_core::http_suite!(serve, Backend::MySql);

/// A database made by the earlier Python service is adopted in place (see
/// `melodyhue_core::api::suite::legacy`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_database_is_adopted() {
    melodyhue_core::api::suite::legacy::adopts_the_legacy_database(&__melodyhue_suite_harness())
        .await;
}

/// Rows of the earlier service that collide under the canonical e-mail form are adopted without
/// a loss (see `melodyhue_core::api::suite::legacy`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_email_collisions_keep_the_oldest() {
    melodyhue_core::api::suite::legacy::adoption_keeps_the_oldest_of_colliding_emails(
        &__melodyhue_suite_harness(),
    )
    .await;
}
