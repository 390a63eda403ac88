//! The PostgreSQL backend.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::sql::{ACQUIRE_TIMEOUT, Pool};
use super::{SqlStore, StoreError};

/// Connections a PostgreSQL pool keeps at most.
const MAX_CONNECTIONS: u32 = 16;

/// Connects to the PostgreSQL database at `url` (`postgres://user:password@host:port/database`)
/// and brings its schema up to date (migrations in `migrations/postgres`).
///
/// Every later call waits at most a few seconds for a connection, then fails with
/// [`StoreError::Unavailable`]; the pool reconnects by itself once the server is back.
pub async fn open(url: &str) -> Result<SqlStore, StoreError> {
    let options =
        PgConnectOptions::from_str(url).map_err(|err| StoreError::Backend(Box::new(err)))?;
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|err| StoreError::Unavailable(Box::new(err)))?;
    sqlx::migrate!("migrations/postgres")
        .run(&pool)
        .await
        .map_err(|err| StoreError::Backend(Box::new(err)))?;
    let store = SqlStore::new(Pool::Postgres(pool));
    store.fill_canonical_emails().await?;
    Ok(store)
}
