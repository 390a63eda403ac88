//! [`App`]: one MelodyHue instance — configuration, storage and the services over them.
//!
//! An `App` is cheap to clone (an `Arc`); every frontend adapter and background job holds one.
//! The use cases themselves are methods of `App`, defined in [`crate::service`].

use std::sync::Arc;

use crate::auth::password::{HashError, PasswordHasher};
use crate::auth::tokens::TokenIssuer;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::service::AccountEvent;
use crate::store::{self, Store, StoreError};

/// Account events a slow listener may fall behind by before it misses some (it is told so).
const ACCOUNT_EVENTS_CAPACITY: usize = 256;

/// Why an [`App`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is wrong or missing.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The password-hashing parameters are unusable.
    #[error(transparent)]
    Hashing(#[from] HashError),
}

/// A running MelodyHue: configuration, storage, clock and the services over them.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) tokens: TokenIssuer,
    pub(crate) passwords: PasswordHasher,
    pub(crate) account_events: tokio::sync::broadcast::Sender<AccountEvent>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

/// Builds an [`App`] from parts, for embedding and tests.
#[must_use]
pub struct AppBuilder {
    config: Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl AppBuilder {
    /// Uses another clock (tests, simulations).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Finishes the app. The configuration must hold its secrets (see
    /// [`Config::ensure_secrets`]).
    pub fn build(self) -> Result<App, StartError> {
        let config = self.config;
        let jwt_key = config
            .jwt_key()
            .ok_or(ConfigError::MissingSecret {
                variable: "SECRET_KEY",
            })?
            .expose()
            .as_bytes()
            .to_vec();
        if config.encryption_key.is_none() {
            return Err(ConfigError::MissingSecret {
                variable: "ENCRYPTION_KEY",
            }
            .into());
        }
        let tokens = TokenIssuer::new(
            &jwt_key,
            config.jwt_algorithm,
            config.access_token_ttl,
            config.refresh_token_ttl,
        );
        let passwords = PasswordHasher::new(config.password_hashing)?;
        Ok(App {
            inner: Arc::new(Inner {
                config,
                store: self.store,
                clock: self.clock,
                tokens,
                passwords,
                account_events: tokio::sync::broadcast::channel(ACCOUNT_EVENTS_CAPACITY).0,
            }),
        })
    }
}

impl App {
    /// Opens the database the configuration names (running its migrations) and builds the app.
    pub async fn connect(config: Config) -> Result<App, StartError> {
        let store = store::open(config.database_url.expose()).await?;
        App::builder(config, store).build()
    }

    /// Starts building an app over an existing store.
    pub fn builder(config: Config, store: Arc<dyn Store>) -> AppBuilder {
        AppBuilder {
            config,
            store,
            clock: Arc::new(SystemClock),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The storage.
    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Subscribes to account events (bans...), e.g. to close the WebSockets of a banned user.
    /// A receiver that falls more than 256 events behind gets `RecvError::Lagged` and should
    /// then re-check every connection it holds.
    pub fn account_events(&self) -> tokio::sync::broadcast::Receiver<AccountEvent> {
        self.inner.account_events.subscribe()
    }

    /// Now, as this app's clock tells it.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }
}
