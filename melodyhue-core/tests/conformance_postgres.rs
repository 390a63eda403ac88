//! The storage conformance kit on PostgreSQL: a fresh database per check, on the server named
//! by `MELODYHUE_TEST_POSTGRES_URL` (skipped without it, except under `CI=true`).

use melodyhue_core::testing::database::{ScratchStore, Server};

async fn fresh_store() -> Option<ScratchStore> {
    ScratchStore::open(Server::Postgres).await
}

melodyhue_core::store_conformance!(fresh_store);
