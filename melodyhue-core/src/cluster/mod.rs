//! Several nodes, one Redis (`REDIS_URL`): each watched user polled by one node, now-playing
//! changes and invalidations pushed to every node, login/2FA and mail budgets counted once.
//!
//! - **Who polls** ([`lease`]): a lease per user in Redis, taken (`SET NX PX`) and renewed by
//!   one Lua script that checks the owner, with a fencing token (`INCR`) that every write of
//!   the holder is checked against (see docs/DECISIONS.md, "Several nodes").
//! - **What it saw** ([`wire`]): the polling node keeps the user's state in Redis and publishes
//!   each change; every node keeps its own copy in its hub, so `/color` and `/infos` never wait
//!   on Redis.
//! - **What changed** ([`changes`]): settings, overlays, deleted accounts, Spotify connections
//!   and bans are applied locally and published; the other nodes apply them on receipt.
//! - **Budgets** ([`budgets`]): the attempt and mail budgets, counted by Lua scripts.
//!
//! Redis trouble is never an outage: every call has a timeout ([`REDIS_TIMEOUT`]); while Redis
//! cannot be reached, each node polls the users its own viewers ask for, counts budgets in
//! memory, logs the outage once and reports it in `/health` and `/metrics`. The connection
//! manager and the subscriber reconnect by themselves. A Redis that is only slow (a call timed
//! out, but Redis answered less than [`SLOW_NOT_GONE`] ago) is not read as gone: see
//! [`lease`].

pub mod budgets;
pub(crate) mod changes;
mod lease;
mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::SecretString;

/// The longest any Redis call may take; beyond it the call counts as failed.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// A call that times out less than this long after Redis last answered finds Redis slow (or
/// this node short of CPU), not gone: a claim then follows instead of polling alone, which
/// would add Spotify calls and lease changes to a machine already behind.
pub const SLOW_NOT_GONE: Duration = Duration::from_secs(5);
/// Users whose newest shared state is remembered (see `ClusterInner::shown`).
const SHOWN_ENTRIES: u64 = 100_000;
/// How long the subscriber waits before connecting again after losing Redis.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(250);
/// How often the subscription's connection is pinged (a ping unanswered within
/// [`SLOW_NOT_GONE`] ends the subscription, which starts again).
const SUBSCRIPTION_HEARTBEAT: Duration = Duration::from_secs(1);

/// `REDIS_URL`, `REDIS_KEY_PREFIX`: where the nodes of one cluster meet.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `REDIS_URL` (`redis://[:password@]host:port[/db]`; `rediss://` for TLS is not built in).
    pub redis_url: SecretString,
    /// `REDIS_KEY_PREFIX` (`melodyhue:`): every key and channel starts with it, so that several
    /// clusters (or test runs) can share one Redis.
    pub key_prefix: String,
}

/// Why a Redis call failed (only logged and counted: callers fall back to local work).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisTrouble {
    /// Redis answered with an error, or the connection failed.
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    /// No answer within [`REDIS_TIMEOUT`].
    #[error("no answer within {REDIS_TIMEOUT:?}")]
    Timeout,
    /// The subscription's connection ended.
    #[error("connection lost")]
    Lost,
}

impl RedisTrouble {
    /// Whether Redis (or this node) was too slow to answer, rather than unreachable.
    fn is_timeout(&self) -> bool {
        match self {
            RedisTrouble::Timeout => true,
            RedisTrouble::Redis(err) => err.is_timeout(),
            RedisTrouble::Lost => false,
        }
    }
}

/// This node's link to the cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<ClusterInner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.inner.node_id)
            .field("redis_up", &self.redis_up())
            .finish_non_exhaustive()
    }
}

struct ClusterInner {
    node_id: String,
    /// This process's name in leases and messages: the node id and a random part, so that a
    /// restarted node (or two nodes misconfigured with one id) never passes for another.
    owner: String,
    prefix: String,
    client: redis::Client,
    connection: ConnectionManager,
    /// `SPOTIFY_POLLING_INTERVAL`.
    interval: Duration,
    redis_up: AtomicBool,
    /// When Redis last answered, in ms after `started` plus one (0: never).
    last_answer: AtomicU64,
    started: Instant,
    redis_failures: AtomicU64,
    redis_outages: AtomicU64,
    leases_taken: AtomicU64,
    claims_deferred: AtomicU64,
    /// The order (fence, then time shared) of the newest shared state shown of each user, so
    /// that an older one arriving late is not shown over it.
    shown: moka::sync::Cache<String, (u64, u64)>,
}

/// What `/health` and `/metrics` show of the cluster (fields may be added: not exhaustive).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStatus {
    /// `NODE_ID`.
    pub node_id: String,
    /// Whether the last Redis call succeeded.
    pub redis_up: bool,
    /// Redis calls that failed or timed out since start.
    pub redis_failures: u64,
    /// Times Redis was lost since start (each logged once): a failed call while Redis was
    /// thought up, as it is at start.
    pub redis_outages: u64,
    /// Leases this node took (a user it started polling) since start.
    pub leases_taken: u64,
    /// Claims that timed out while Redis was only slow (see [`SLOW_NOT_GONE`]) and followed
    /// instead of polling alone, since start.
    pub claims_deferred: u64,
}

impl Cluster {
    /// Joins the cluster at `config.redis_url` as `node_id`, polling every `interval`. Does not
    /// connect yet (the first call does), so a node starts while Redis is down.
    pub fn new(
        config: &ClusterConfig,
        node_id: &str,
        interval: Duration,
    ) -> Result<Cluster, redis::RedisError> {
        let client = redis::Client::open(config.redis_url.expose())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = client.get_connection_manager_lazy(manager_config)?;
        let owner = format!(
            "{node_id}#{}",
            hex::encode(crate::model::random_bytes::<6>())
        );
        Ok(Cluster {
            inner: Arc::new(ClusterInner {
                node_id: node_id.to_owned(),
                owner,
                prefix: config.key_prefix.clone(),
                client,
                connection,
                interval,
                redis_up: AtomicBool::new(true),
                last_answer: AtomicU64::new(0),
                started: Instant::now(),
                redis_failures: AtomicU64::new(0),
                redis_outages: AtomicU64::new(0),
                leases_taken: AtomicU64::new(0),
                claims_deferred: AtomicU64::new(0),
                shown: moka::sync::Cache::builder()
                    .max_capacity(SHOWN_ENTRIES)
                    .time_to_idle(interval.saturating_mul(10).max(Duration::from_secs(60)))
                    .build(),
            }),
        })
    }

    /// `NODE_ID`.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// Whether the last Redis call succeeded.
    pub fn redis_up(&self) -> bool {
        self.inner.redis_up.load(Ordering::Relaxed)
    }

    /// The state shown by `/health` and `/metrics`.
    pub fn status(&self) -> ClusterStatus {
        ClusterStatus {
            node_id: self.inner.node_id.clone(),
            redis_up: self.redis_up(),
            redis_failures: self.inner.redis_failures.load(Ordering::Relaxed),
            redis_outages: self.inner.redis_outages.load(Ordering::Relaxed),
            leases_taken: self.inner.leases_taken.load(Ordering::Relaxed),
            claims_deferred: self.inner.claims_deferred.load(Ordering::Relaxed),
        }
    }

    /// `prefix` + `name`.
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.inner.prefix)
    }

    /// Runs one Redis call on the shared connection, within [`REDIS_TIMEOUT`], recording
    /// whether Redis answers (logged once per change).
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, RedisTrouble>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let outcome =
            match tokio::time::timeout(REDIS_TIMEOUT, call(self.inner.connection.clone())).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(err)) => Err(RedisTrouble::Redis(err)),
                Err(_) => Err(RedisTrouble::Timeout),
            };
        match &outcome {
            Ok(_) => self.mark_up(),
            Err(err) => self.mark_down(err),
        }
        outcome
    }

    /// Whether `trouble` is a slow Redis rather than a lost one: a timeout, while Redis
    /// answered less than [`SLOW_NOT_GONE`] ago.
    fn only_slow(&self, trouble: &RedisTrouble) -> bool {
        let last = self.inner.last_answer.load(Ordering::Relaxed);
        let silent_ms = self.since_start_ms().saturating_add(1).saturating_sub(last);
        trouble.is_timeout() && last > 0 && u128::from(silent_ms) < SLOW_NOT_GONE.as_millis()
    }

    fn since_start_ms(&self) -> u64 {
        u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn mark_up(&self) {
        self.inner
            .last_answer
            .store(self.since_start_ms().saturating_add(1), Ordering::Relaxed);
        if !self.inner.redis_up.swap(true, Ordering::Relaxed) {
            tracing::info!(node_id = %self.inner.node_id, "Redis answers again: back in the cluster");
        }
    }

    fn mark_down(&self, err: &RedisTrouble) {
        self.inner.redis_failures.fetch_add(1, Ordering::Relaxed);
        if self.inner.redis_up.swap(false, Ordering::Relaxed) {
            self.inner.redis_outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                node_id = %self.inner.node_id,
                error = %err,
                "Redis unavailable: serving from this node's copies, polling its own viewers' users (once it has been silent for 5 s, if it only times out) and counting budgets locally until it answers again"
            );
        }
    }
}
