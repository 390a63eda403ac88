//! Scratch databases on the machine's PostgreSQL and MariaDB/MySQL servers, for tests.
//!
//! A test names the server it needs; the admin connection comes from an environment variable
//! ([`Server::env_var`]) and is declared with [`Server::need`]: without the variable the test is
//! reported as ignored, and fails under `CI=true` (see [`crate::trial`]). Each
//! [`ScratchDatabase`] is a fresh database with a unique name, dropped again when the value is
//! dropped.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection as _};

use crate::Need;
use melodyhue_core::store::{Store, StoreError};

/// A database server tests may run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// PostgreSQL.
    Postgres,
    /// MariaDB or MySQL.
    MySql,
}

impl Server {
    /// The variable holding an admin URL of this server, e.g.
    /// `postgres://postgres@127.0.0.1:5432/postgres` or `mysql://root@127.0.0.1:3306/mysql`.
    pub fn env_var(self) -> &'static str {
        match self {
            Server::Postgres => "MELODYHUE_TEST_POSTGRES_URL",
            Server::MySql => "MELODYHUE_TEST_MYSQL_URL",
        }
    }

    /// What a test on this server needs: its [`Server::env_var`].
    pub fn need(self) -> Need {
        Need::var(self.env_var())
    }

    /// The admin URL of this server, if this run has one.
    pub fn admin_url(self) -> Option<String> {
        crate::var(self.env_var())
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Server::Postgres => "PostgreSQL",
            Server::MySql => "MariaDB/MySQL",
        })
    }
}

/// A fresh, uniquely named database, dropped when this value is dropped.
pub struct ScratchDatabase {
    server: Server,
    admin_url: String,
    name: String,
    url: String,
}

impl fmt::Debug for ScratchDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScratchDatabase")
            .field("server", &self.server)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ScratchDatabase {
    /// Creates an empty database on `server`, whose test declared [`Server::need`].
    ///
    /// # Panics
    /// When the server is not configured, or refuses (a broken set-up fails the test).
    pub async fn create(server: Server) -> ScratchDatabase {
        let admin_url = crate::needed_var(server.env_var());
        let name = format!(
            "melodyhue_test_{}",
            hex::encode(melodyhue_core::model::random_bytes::<8>())
        );
        let mut url = url::Url::parse(&admin_url)
            .unwrap_or_else(|err| panic!("{} is not a URL: {err}", server.env_var()));
        url.set_path(&name);
        let statement = match server {
            Server::Postgres => format!("CREATE DATABASE {name}"),
            Server::MySql => {
                format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
            }
        };
        if let Err(err) = admin_execute(server, &admin_url, &[statement]).await {
            panic!(
                "cannot create a scratch database on {server} ({}): {err}",
                server.env_var()
            );
        }
        ScratchDatabase {
            server,
            admin_url,
            name,
            url: url.to_string(),
        }
    }

    /// The URL of this database, for [`melodyhue_core::store::open`] or `DATABASE_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its name on the server.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `sql` (any number of `;`-separated statements, e.g. a dump) in this database.
    pub async fn execute_script(&self, sql: &str) -> Result<(), sqlx::Error> {
        let sql = AssertSqlSafe(sql.to_owned());
        match self.server {
            Server::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await
            }
            Server::MySql => {
                let mut conn = sqlx::MySqlConnection::connect(&self.url).await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await
            }
        }
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (server, admin_url) = (self.server, self.admin_url.clone());
        let statements = match server {
            // FORCE ends the connections a test's pool may still hold.
            Server::Postgres => vec![format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )],
            // Never wait long for a lock a dying test still holds; leave the database then.
            Server::MySql => vec![
                "SET SESSION lock_wait_timeout = 10".to_owned(),
                format!("DROP DATABASE IF EXISTS {}", self.name),
            ],
        };
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block on a future: use a thread
        // with its own small runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(admin_execute(server, &admin_url, &statements))
                .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: scratch database {name} on {server} was not dropped");
        }
    }
}

/// Runs statements on the admin connection of `server`, within a bounded time.
async fn admin_execute(
    server: Server,
    admin_url: &str,
    statements: &[String],
) -> Result<(), sqlx::Error> {
    let work = async {
        match server {
            Server::Postgres => {
                let mut conn = sqlx::PgConnection::connect(admin_url).await?;
                for statement in statements {
                    sqlx::raw_sql(AssertSqlSafe(statement.clone()))
                        .execute(&mut conn)
                        .await?;
                }
                conn.close().await
            }
            Server::MySql => {
                let mut conn = sqlx::MySqlConnection::connect(admin_url).await?;
                for statement in statements {
                    sqlx::raw_sql(AssertSqlSafe(statement.clone()))
                        .execute(&mut conn)
                        .await?;
                }
                conn.close().await
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
}

/// A store on a scratch database: dereferences to the store, drops the database last.
pub struct ScratchStore {
    store: Arc<dyn Store>,
    // Declared after the store so the store's pool goes first.
    database: ScratchDatabase,
}

impl ScratchStore {
    /// Opens a migrated store on a fresh database of `server` (see [`ScratchDatabase::create`]).
    ///
    /// # Panics
    /// When the server is not configured, or the database cannot be opened.
    pub async fn open(server: Server) -> ScratchStore {
        let database = ScratchDatabase::create(server).await;
        let store = melodyhue_core::store::open(database.url())
            .await
            .unwrap_or_else(|err: StoreError| panic!("cannot open {database:?}: {err:?}"));
        ScratchStore { store, database }
    }

    /// The database under the store.
    pub fn database(&self) -> &ScratchDatabase {
        &self.database
    }
}

impl Deref for ScratchStore {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        self.store.as_ref()
    }
}
