//! The embedded SQLite backend: a file (or memory) database that needs no server.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::sql::{ACQUIRE_TIMEOUT, Pool};
use super::{SqlStore, StoreError};

/// Opens (creating it if needed) the SQLite database at `url` (`sqlite:path/to/file.db`,
/// `sqlite://path`, or `sqlite::memory:`) and brings its schema up to date.
pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|err| StoreError::Backend(Box::new(err)))?
        .create_if_missing(true)
        .foreign_keys(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        // Writers queue behind each other; this bounds how long one waits.
        .busy_timeout(Duration::from_secs(5));
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if !in_memory {
        // A first run creates `./data/` itself.
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|err| StoreError::Unavailable(Box::new(err)))?;
        }
    }
    // Every connection to `:memory:` is its own database, so a memory store keeps exactly one.
    let pool_options = if in_memory {
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        SqlitePoolOptions::new().max_connections(8)
    };
    let pool = pool_options
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|err| StoreError::Unavailable(Box::new(err)))?;
    sqlx::migrate!("migrations/sqlite")
        .run(&pool)
        .await
        .map_err(|err| StoreError::Backend(Box::new(err)))?;
    let store = SqlStore::new(Pool::Sqlite(pool));
    store.fill_canonical_emails().await?;
    Ok(store)
}
