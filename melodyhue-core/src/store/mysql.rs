//! The MariaDB/MySQL backend, which also adopts a database made by the earlier Python service.

use std::str::FromStr;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};

use super::sql::{ACQUIRE_TIMEOUT, Pool};
use super::{SqlStore, StoreError};

/// Connections a MariaDB/MySQL pool keeps at most.
const MAX_CONNECTIONS: u32 = 16;

/// Connects to the MariaDB/MySQL database at `url` (`mysql://user:password@host:port/database`)
/// and brings its schema up to date (migrations in `migrations/mysql`).
///
/// A database made by the earlier MelodyHue service is upgraded in place: the first migration
/// describes its tables exactly (and creates them in an empty database), the later ones add
/// what this version needs without touching a row.
///
/// Every later call waits at most a few seconds for a connection, then fails with
/// [`StoreError::Unavailable`]; the pool reconnects by itself once the server is back.
pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
    let options = MySqlConnectOptions::from_str(url)
        .map_err(|err| StoreError::Backend(Box::new(err)))?
        // The legacy schema's collation: string comparisons and LIKE ignore case (e-mails are
        // compared by their canonical form, in a column of its own with a binary collation).
        .charset("utf8mb4")
        .collation("utf8mb4_general_ci");
    let pool = MySqlPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|err| StoreError::Unavailable(Box::new(err)))?;
    sqlx::migrate!("migrations/mysql")
        .run(&pool)
        .await
        .map_err(|err| StoreError::Backend(Box::new(err)))?;
    let store = SqlStore::new(Pool::MySql(pool));
    store.fill_canonical_emails().await?;
    Ok(store)
}
