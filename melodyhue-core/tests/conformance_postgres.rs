//! The storage conformance kit on PostgreSQL: a fresh database per check, on the server named
//! by `MELODYHUE_TEST_POSTGRES_URL` (ignored without it, failed under `CI=true`).

use melodyhue_testkit::database::{ScratchStore, Server};

async fn fresh_store() -> ScratchStore {
    ScratchStore::open(Server::Postgres).await
}

melodyhue_testkit::store_conformance!(fresh_store, needs = vec![Server::Postgres.need()]);
