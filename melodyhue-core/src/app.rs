//! [`App`]: one MelodyHue instance — configuration, storage and the services over them.
//!
//! An `App` is cheap to clone (an `Arc`); every frontend adapter and background job holds one.
//! The use cases are grouped by area, each behind an accessor returning a borrowed view
//! ([`App::accounts`], [`App::overlays`], [`App::now_playing`]...), defined in
//! [`crate::service`].

use std::sync::Arc;

use std::time::Duration;

use crate::api::events::StreamCounts;
use crate::api::ws::SocketCounts;
use crate::auth::password::{HashError, PasswordHasher};
use crate::auth::throttle::{AttemptBudget, InMemoryBudget, MAX_TRACKED_KEYS};
use crate::auth::tokens::TokenIssuer;
use crate::clock::{Clock, SystemClock};
use crate::cluster::Cluster;
use crate::cluster::budgets::{RedisAttemptBudget, RedisMailBudget};
use crate::config::{Config, ConfigError};
use crate::mail::{
    DisabledMailer, LocalMailBudget, MailBudget, MailError, Mailer, Outbox, SmtpMailer,
    SmtpSettings,
};
use crate::metrics::{ConnectionCounts, MetricSources, Metrics};
use crate::secrets::SecretBox;
use crate::service::now_playing::hub::NowPlayingHub;
use crate::service::{self, AccountEvent, HotReads};
use crate::spotify::{ImagePolicy, SpotifyClient, SpotifyEndpoints, SpotifyError};
use crate::store::{self, Store, StoreError};

/// How long one e-mail may take to reach the SMTP server.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

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
    /// The SMTP settings are unusable.
    #[error("SMTP: {0}")]
    Mail(#[from] MailError),
    /// The Spotify client could not be built.
    #[error("Spotify client: {0}")]
    Spotify(#[from] SpotifyError),
    /// `REDIS_URL` cannot be used.
    #[error("REDIS_URL: {0}")]
    Cluster(#[from] redis::RedisError),
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
    pub(crate) secrets: SecretBox,
    pub(crate) outbox: Outbox,
    pub(crate) mail_budget: Arc<dyn MailBudget>,
    /// Failure budgets of logins and 2FA codes.
    pub(crate) throttle: Arc<dyn AttemptBudget>,
    pub(crate) spotify: SpotifyClient,
    pub(crate) hub: NowPlayingHub,
    pub(crate) hot_reads: HotReads,
    /// `Some` when `METRICS=true`.
    pub(crate) metrics: Option<Metrics>,
    pub(crate) account_events: tokio::sync::broadcast::Sender<AccountEvent>,
    /// Client connections of the server serving this app (`crate::server`).
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) connections: Arc<ConnectionCounts>,
    /// Open `/ws` sockets per user.
    pub(crate) ws_sockets: Arc<SocketCounts>,
    /// Open `/infos/{user_id}/events` streams, per client IP and in all.
    pub(crate) event_streams: Arc<StreamCounts>,
    /// The other nodes, when `REDIS_URL` is set.
    pub(crate) cluster: Option<Cluster>,
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
    mailer: Option<Arc<dyn Mailer>>,
    mail_budget: Option<Arc<dyn MailBudget>>,
    attempt_budget: Option<Arc<dyn AttemptBudget>>,
}

impl AppBuilder {
    /// Counts the mail budgets here instead of in this process (e.g. shared by several nodes).
    /// By default: [`LocalMailBudget`] with the configured limits.
    pub fn mail_budget(mut self, budget: Arc<dyn MailBudget>) -> Self {
        self.mail_budget = Some(budget);
        self
    }

    /// Keeps the failure budgets of logins and 2FA codes in `budget` instead of this
    /// process's memory (e.g. a store shared by several servers).
    pub fn attempt_budget(mut self, budget: Arc<dyn AttemptBudget>) -> Self {
        self.attempt_budget = Some(budget);
        self
    }

    /// Sends mail through this mailer instead of the one the configuration describes.
    pub fn mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Uses another clock (tests, simulations).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Finishes the app. The configuration must hold its secrets (see
    /// [`Config::ensure_secrets`]). With `REDIS_URL` set, call it within a tokio runtime: it
    /// starts the task that receives the other nodes' messages.
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
        let secrets = SecretBox::new(
            config
                .encryption_key
                .as_ref()
                .ok_or(ConfigError::MissingSecret {
                    variable: "ENCRYPTION_KEY",
                })?
                .expose(),
        );
        let mailer = match self.mailer {
            Some(mailer) => mailer,
            None => mailer_from(&config)?,
        };
        let tokens = TokenIssuer::new(
            &jwt_key,
            config.jwt_algorithm,
            config.access_token_ttl,
            config.refresh_token_ttl,
        );
        let passwords = PasswordHasher::new(config.password_hashing, config.password_admission)?;
        let cluster = match &config.cluster {
            Some(cluster) => Some(Cluster::new(
                cluster,
                &config.node_id,
                config.spotify.polling_interval,
            )?),
            None => None,
        };
        let throttle = self.attempt_budget.unwrap_or_else(|| match &cluster {
            Some(cluster) => Arc::new(RedisAttemptBudget::new(
                cluster.clone(),
                config.throttle.window,
            )),
            None => Arc::new(InMemoryBudget::new(
                config.throttle.window,
                MAX_TRACKED_KEYS,
            )),
        });
        let spotify = SpotifyClient::new(SpotifyEndpoints {
            accounts_url: config.spotify.accounts_url.clone(),
            api_url: config.spotify.api_url.clone(),
            timeout: config.spotify.timeout,
        })?;
        let hub = NowPlayingHub::new(
            spotify.clone(),
            Arc::clone(&self.store),
            secrets.clone(),
            ImagePolicy {
                allowed_hosts: config.spotify.image_hosts.clone(),
                max_bytes: ImagePolicy::DEFAULT_MAX_BYTES,
            },
            config.spotify.polling_interval,
        );
        if let Some(cluster) = &cluster {
            hub.coordinate(Arc::new(cluster.clone()));
        }
        let hot_reads = HotReads::new(config.spotify.polling_interval);
        let connections = Arc::new(ConnectionCounts::default());
        let outbox = Outbox::new(mailer);
        let mail_budget = self.mail_budget.unwrap_or_else(|| match &cluster {
            Some(cluster) => Arc::new(RedisMailBudget::new(cluster.clone(), config.mail_limits)),
            None => Arc::new(LocalMailBudget::new(config.mail_limits)),
        });
        let event_streams = Arc::<StreamCounts>::default();
        let metrics = config.metrics.then(|| {
            Metrics::new(MetricSources {
                hub: hub.clone(),
                spotify: spotify.clone(),
                store: Arc::clone(&self.store),
                connections: Arc::clone(&connections),
                outbox: outbox.clone(),
                event_streams: Arc::clone(&event_streams),
                node_id: config.node_id.clone(),
                cluster: cluster.clone(),
            })
        });
        let app = App {
            inner: Arc::new(Inner {
                config,
                store: self.store,
                clock: self.clock,
                tokens,
                passwords,
                secrets,
                outbox,
                mail_budget,
                throttle,
                spotify,
                hub,
                hot_reads,
                metrics,
                account_events: tokio::sync::broadcast::channel(ACCOUNT_EVENTS_CAPACITY).0,
                connections,
                ws_sockets: Arc::default(),
                event_streams,
                cluster,
            }),
        };
        if let Some(cluster) = &app.inner.cluster {
            cluster.spawn_subscriber(Arc::downgrade(&app.inner));
        }
        Ok(app)
    }
}

/// SMTP when `SMTP_HOST` is set; otherwise a mailer that sends nothing and says so in the log.
fn mailer_from(config: &Config) -> Result<Arc<dyn Mailer>, MailError> {
    let Some(smtp) = &config.smtp else {
        return Ok(Arc::new(DisabledMailer));
    };
    let settings = SmtpSettings {
        host: smtp.host.clone(),
        port: smtp.port,
        username: smtp.username.clone(),
        password: smtp.password.as_ref().map(|p| p.expose().to_owned()),
        starttls: smtp.starttls,
        implicit_tls: smtp.implicit_tls,
        from: smtp.from.clone(),
        from_name: smtp.from_name.clone(),
        timeout: SMTP_TIMEOUT,
    };
    Ok(Arc::new(SmtpMailer::new(settings)?))
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
            mailer: None,
            mail_budget: None,
            attempt_budget: None,
        }
    }

    /// This node's link to the others, when `REDIS_URL` is set.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.as_ref()
    }

    /// The metrics registry, when `METRICS=true`.
    pub(crate) fn metrics(&self) -> Option<&Metrics> {
        self.inner.metrics.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The storage.
    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// The password hasher, whose admission queue and computation count the test kit checks.
    #[doc(hidden)]
    pub fn password_hasher(&self) -> &PasswordHasher {
        &self.inner.passwords
    }

    /// Open `/infos/{user_id}/events` streams, which the test kit checks.
    #[doc(hidden)]
    pub fn open_event_streams(&self) -> usize {
        self.inner.event_streams.open()
    }

    /// Registration, login and sessions, the profile, password and e-mail changes, account
    /// deletion.
    pub fn accounts(&self) -> service::Accounts<'_> {
        service::Accounts { app: self }
    }

    /// Two-factor authentication (TOTP): setup, the login's second step, disabling.
    pub fn two_factor(&self) -> service::SecondFactor<'_> {
        service::SecondFactor { app: self }
    }

    /// Account recovery by e-mail: password reset, reverting an e-mail change.
    pub fn recovery(&self) -> service::Recovery<'_> {
        service::Recovery { app: self }
    }

    /// Each user's settings.
    pub fn settings(&self) -> service::UserSettings<'_> {
        service::UserSettings { app: self }
    }

    /// Overlays: their owners' CRUD and the public read.
    pub fn overlays(&self) -> service::Overlays<'_> {
        service::Overlays { app: self }
    }

    /// Moderation and administration: roles, warnings, bans, moderated profiles and overlays.
    pub fn moderation(&self) -> service::Moderation<'_> {
        service::Moderation { app: self }
    }

    /// Each user's link to Spotify: app credentials and the authorization flow.
    pub fn spotify(&self) -> service::Spotify<'_> {
        service::Spotify { app: self }
    }

    /// What each user is playing (track and colors), and subscriptions to its changes.
    pub fn now_playing(&self) -> service::Playing<'_> {
        service::Playing { app: self }
    }

    /// The background jobs: purging long-banned accounts, deleting expired sessions and tokens.
    pub fn jobs(&self) -> service::Jobs<'_> {
        service::Jobs { app: self }
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
