//! The core HTTP suite, served by warp, on MariaDB/MySQL (a fresh database per case on the
//! server of `MELODYHUE_TEST_MYSQL_URL`; ignored without it, failed under `CI=true`), and the
//! adoption of a database of the earlier Python service (`melodyhue_testkit::suite::legacy`).

use std::process::ExitCode;

use melodyhue_core::App;
use melodyhue_testkit::suite::{self, Backend, Harness, ServeFuture};

fn serve(app: App, listener: tokio::net::TcpListener) -> ServeFuture {
    Box::pin(melodyhue_warp::serve(app, listener, std::future::pending()))
}

fn main() -> ExitCode {
    let harness = Harness {
        serve,
        backend: Backend::MySql,
    };
    let mut trials = suite::trials(harness);
    trials.extend(suite::legacy::trials(harness));
    melodyhue_testkit::run(trials)
}
