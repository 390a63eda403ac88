//! The storage conformance kit on MariaDB/MySQL: a fresh database per check, on the server named
//! by `MELODYHUE_TEST_MYSQL_URL` (ignored without it, failed under `CI=true`).

use melodyhue_testkit::database::{ScratchStore, Server};

async fn fresh_store() -> ScratchStore {
    ScratchStore::open(Server::MySql).await
}

melodyhue_testkit::store_conformance!(fresh_store, needs = vec![Server::MySql.need()]);
