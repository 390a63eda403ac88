//! The example in-memory store passes the whole storage conformance kit.

use std::sync::Arc;

use melodyhue_core::store::Store;
use melodyhue_examples::memory_store::MemoryStore;

async fn fresh_store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

melodyhue_testkit::store_conformance!(fresh_store);
