//! The login/2FA failure budgets ([`AttemptBudget`]) and the mail budgets ([`MailBudget`])
//! counted in Redis, so that they hold whichever node a request reaches.
//!
//! One Lua script takes a unit from every key of an attempt, all or none, with the same fixed
//! windows as the in-memory counters: a window starts with the first unit taken from an empty
//! key and lasts the configured length (the key expires with it). While Redis cannot be reached,
//! each node counts in its own memory (the single-node budgets), so an outage of Redis never
//! refuses or lets through everything.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::Script;
use sha2::{Digest, Sha256};

use super::Cluster;
use crate::auth::throttle::{
    AttemptBudget, BudgetKey, InMemoryBudget, MAX_TRACKED_KEYS, Reservation, ReservedUnit,
};
use crate::mail::{self, LocalMailBudget, MailBudget, MailLimits};

/// KEYS: the counters. ARGV: window (ms), now (ms), then one limit per key.
/// Returns `{1, start of each key's window...}` when a unit was taken from every key, else
/// `{0, ms until the emptiest refusing key's window ends}`.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local window = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local starts = {}
local spent = {}
local refused = -1
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 'start', 'spent')
  local start = tonumber(v[1])
  local used = tonumber(v[2]) or 0
  if start == nil or used == 0 or now >= start + window then
    start = now
    used = 0
  end
  starts[i] = start
  spent[i] = used
  if used >= tonumber(ARGV[2 + i]) then
    local left = start + window - now
    if left > refused then refused = left end
  end
end
if refused >= 0 then
  return {0, refused}
end
local out = {1}
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'start', starts[i], 'spent', spent[i] + 1)
  redis.call('PEXPIREAT', key, starts[i] + window)
  out[i + 1] = starts[i]
end
return out
",
    )
});

/// KEYS: a counter. ARGV: the window start the unit was taken from.
static REFUND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('HMGET', KEYS[1], 'start', 'spent')
if v[1] == ARGV[1] and (tonumber(v[2]) or 0) > 0 then
  redis.call('HINCRBY', KEYS[1], 'spent', -1)
end
return 1
",
    )
});

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Cluster {
    /// Takes one unit from each of `keys` (full Redis keys, with their limits) in windows of
    /// `window`: the window starts taken from, or the wait. `None` when Redis cannot be reached.
    async fn take(
        &self,
        keys: &[(String, u32)],
        window: Duration,
        now: DateTime<Utc>,
    ) -> Option<Result<Vec<i64>, Duration>> {
        let names: Vec<&str> = keys.iter().map(|(key, _)| key.as_str()).collect();
        let answer: Vec<i64> = self
            .call(|mut connection| async move {
                let mut invocation = TAKE.prepare_invoke();
                invocation
                    .key(names)
                    .arg(millis(window))
                    .arg(now.timestamp_millis());
                for (_, limit) in keys {
                    invocation.arg(*limit);
                }
                invocation.invoke_async(&mut connection).await
            })
            .await
            .ok()?;
        match answer.split_first() {
            Some((1, starts)) => Some(Ok(starts.to_vec())),
            Some((_, [wait, ..])) => Some(Err(Duration::from_millis(
                u64::try_from(*wait).unwrap_or_default(),
            ))),
            _ => None,
        }
    }
}

/// Login and 2FA failure budgets in Redis (see the [module documentation](self)).
#[derive(Debug, Clone)]
pub struct RedisAttemptBudget {
    cluster: Cluster,
    window: Duration,
    /// Counts while Redis cannot be reached.
    local: InMemoryBudget,
}

impl RedisAttemptBudget {
    /// Budgets over windows of `window`, shared through `cluster`.
    pub fn new(cluster: Cluster, window: Duration) -> Self {
        RedisAttemptBudget {
            cluster,
            window,
            local: InMemoryBudget::new(window, MAX_TRACKED_KEYS),
        }
    }

    fn key(&self, key: &str) -> String {
        self.cluster.key(&format!("attempts:{key}"))
    }
}

#[async_trait]
impl AttemptBudget for RedisAttemptBudget {
    async fn reserve(
        &self,
        keys: &[BudgetKey],
        now: DateTime<Utc>,
    ) -> Result<Reservation, Duration> {
        let mut keys: Vec<&BudgetKey> = keys.iter().collect();
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        keys.dedup_by(|a, b| a.key == b.key);
        let counters: Vec<(String, u32)> =
            keys.iter().map(|k| (self.key(&k.key), k.limit)).collect();
        match self.cluster.take(&counters, self.window, now).await {
            Some(Ok(starts)) => Ok(Reservation {
                units: keys
                    .iter()
                    .zip(starts)
                    .map(|(key, window)| ReservedUnit {
                        key: key.key.clone(),
                        window,
                    })
                    .collect(),
            }),
            Some(Err(wait)) => Err(wait),
            None => {
                let keys: Vec<BudgetKey> = keys.into_iter().cloned().collect();
                self.local.reserve(&keys, now).await
            }
        }
    }

    async fn refund(&self, reservation: Reservation) {
        for unit in &reservation.units {
            let key = self.key(&unit.key);
            let window = unit.window;
            let _: Result<i64, _> = self
                .cluster
                .call(|mut connection| async move {
                    REFUND
                        .key(key)
                        .arg(window)
                        .invoke_async(&mut connection)
                        .await
                })
                .await;
        }
        // A unit taken while Redis was down came from the local counters (whose window marks
        // never match Redis's, so at most one of the two refunds finds its unit).
        self.local.refund(reservation).await;
    }

    async fn forget(&self, key: &str) {
        let name = self.key(key);
        let _: Result<i64, _> = self
            .cluster
            .call(|mut connection| async move {
                redis::cmd("DEL")
                    .arg(name)
                    .query_async(&mut connection)
                    .await
            })
            .await;
        self.local.forget(key).await;
    }
}

/// Mail budgets in Redis (see the [module documentation](self)). Addresses are keyed by a
/// SHA-256 of their canonical form, so that Redis holds no address.
pub struct RedisMailBudget {
    cluster: Cluster,
    limits: MailLimits,
    /// Counts while Redis cannot be reached.
    local: LocalMailBudget,
}

impl std::fmt::Debug for RedisMailBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisMailBudget")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl RedisMailBudget {
    /// Budgets with these limits, shared through `cluster`.
    pub fn new(cluster: Cluster, limits: MailLimits) -> Self {
        RedisMailBudget {
            cluster,
            limits,
            local: LocalMailBudget::new(limits),
        }
    }
}

#[async_trait]
impl MailBudget for RedisMailBudget {
    async fn take(&self, key: &mail::BudgetKey, now: DateTime<Utc>) -> Result<(), Duration> {
        let (name, limit) = match key {
            mail::BudgetKey::Address(address) => (
                format!("mail:address:{}", hex::encode(Sha256::digest(address))),
                self.limits.per_address,
            ),
            mail::BudgetKey::Ip(ip) => (format!("mail:ip:{ip}"), self.limits.per_ip),
        };
        let counters = [(self.cluster.key(&name), limit)];
        match self.cluster.take(&counters, self.limits.window, now).await {
            Some(outcome) => outcome.map(|_| ()),
            None => self.local.take(key, now).await,
        }
    }
}
