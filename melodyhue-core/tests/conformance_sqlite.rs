//! The storage conformance kit on SQLite: a fresh database file per check.

#![allow(clippy::expect_used)]

use std::ops::Deref;
use std::sync::Arc;

use melodyhue_core::store::{Store, sqlite};

/// A store on a database file that lives as long as the store.
struct FileStore {
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

impl Deref for FileStore {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        self.store.as_ref()
    }
}

async fn fresh_store() -> FileStore {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite:{}", dir.path().join("melodyhue.db").display());
    let store = sqlite::open(&url).await.expect("open SQLite");
    FileStore {
        store: Arc::new(store),
        _dir: dir,
    }
}

melodyhue_testkit::store_conformance!(fresh_store);
