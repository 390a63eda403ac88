//! Who polls a user: a lease in Redis, with a fencing token.
//!
//! Keys, per user: `lease:<id>` = `<owner>|<fence>` (expires), `fence:<id>` (the counter behind
//! the tokens), `hold:<id>` (a `429`'s wait or a refusal's pause, for every node), `now-playing:<id>` (the shared
//! state, see [`super::wire`]).
//!
//! - A lease lives [`LEASE_TURNS`] polling intervals and is renewed by each poll of its holder,
//!   which polls once per interval, when it shares what the poll found. The holder polls next
//!   without claiming first while its lease has more than a quarter interval left (half an
//!   interval is, normally): one script per poll, not two, on the busiest path of Redis. A poll
//!   that Spotify answers late renews the lease a quarter interval before it would end, and
//!   again each time while the claims succeed, up to a minute (see `hub::polling`), so it does
//!   not cost the holder its lease (and the user a new holder, which reads the connection and
//!   gets a token again). A dead holder's lease runs out at most 1.5 intervals after its last
//!   poll, and the next claim of another node takes it then — within two intervals.
//! - A holder that lost its lease without knowing (Redis lost its keys, or the machine was
//!   suspended) polls at most once more before its share is refused; it then claims, and
//!   follows.
//! - The fencing counter never goes back: one that Redis lost is started again from the clock
//!   (ms), above every token it gave, so the other nodes rank a new holder's states above the
//!   ones they showed before.
//! - The claim script takes a free lease (`SET NX PX`, with a new token from `INCR`), renews
//!   the caller's own, and otherwise answers how long the holder's lease still runs, with the
//!   shared state: a follower claims again when it runs out.
//! - Each write of a holder (the state it shares, a hold) is a script that first checks that
//!   the lease still holds the holder's token: a node paused past its lease, whose user was
//!   taken over, cannot overwrite the newer holder's state.
//! - A claim that times out while Redis answered moments ago (see [`super::SLOW_NOT_GONE`])
//!   follows and claims again a quarter interval later: under load, a node that polled alone on
//!   each slow answer added Spotify calls and let leases lapse, and each new holder read the
//!   connection from the database again. Only a Redis that refuses, or stays silent longer,
//!   makes the node poll alone.
//! - A holder whose viewers are gone shortens its lease to the time left until its next poll
//!   was due, so another node takes over without polling sooner than once per interval.

use std::sync::LazyLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::Script;

use super::wire::{SharedState, WireSnapshot, unix_ms};
use super::{Cluster, changes::Change};
use crate::service::now_playing::coordination::{Claim, PollCoordinator, PollLease};
use crate::service::now_playing::hub::Snapshot;

/// A lease lasts this many polling intervals.
const LEASE_TURNS: f64 = 1.5;
/// The shared state outlives this many polling intervals without a poll (beyond a hold: see
/// [`SHARE_SCRIPT`]).
const STATE_TURNS: u32 = 4;
/// A follower never waits less than this between claims.
const MIN_RETRY: Duration = Duration::from_millis(10);

/// KEYS: lease, fence, hold, state. ARGV: owner, lease length (ms).
/// Returns `{1, fence}` when the caller renewed its lease, `{2, fence}` when it took it, else `{0, ms until it may claim
/// again, shared state or nil}`.
static CLAIM_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local hold = redis.call('PTTL', KEYS[3])
if hold > 0 then
  return {0, hold, redis.call('GET', KEYS[4])}
end
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, '|', 1, true)
  if sep and string.sub(current, 1, sep - 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, tonumber(string.sub(current, sep + 1)), false}
  end
  return {0, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[4])}
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  -- A counter lost (Redis restarted, or a day without a new holder) starts again above every
  -- fence it gave: from the clock, in ms. Counted up from 1 again, the new holder's states
  -- would rank below the last ones the other nodes showed, and be ignored by them.
  local now = redis.call('TIME')
  redis.call('SET', KEYS[2], string.format('%.0f', now[1] * 1000 + math.floor(now[2] / 1000)))
end
local fence = redis.call('INCR', KEYS[2])
-- The counter of a user nobody polled for a day is not worth keeping.
redis.call('PEXPIRE', KEYS[2], 86400000)
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. fence, 'NX', 'PX', ARGV[2])
return {2, fence, false}
",
    )
});

/// KEYS: lease, state, hold. ARGV: owner|fence, state, state lifetime (ms), channel, publish
/// (1/0), lease length (ms).
///
/// The state lives its lifetime beyond the user's hold, if any (a `429`'s wait, a refusal's
/// 30 s pause, set just before): nobody polls meanwhile, and a node whose viewers arrive then
/// shows it at once instead of waiting a second for a first answer that cannot come.
static SHARE_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local lifetime = tonumber(ARGV[3]) + math.max(redis.call('PTTL', KEYS[3]), 0)
redis.call('SET', KEYS[2], ARGV[2], 'PX', lifetime)
if ARGV[5] == '1' then
  redis.call('PUBLISH', ARGV[4], ARGV[2])
end
return 1
",
    )
});

/// KEYS: lease, hold. ARGV: owner|fence, wait (ms).
static HOLD_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 1
",
    )
});

/// KEYS: lease. ARGV: owner|fence, time left (ms): the lease ends then (at once when 0).
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
",
    )
});

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Cluster {
    fn lease_key(&self, user_id: &str) -> String {
        self.key(&format!("lease:{user_id}"))
    }

    fn hold_key(&self, user_id: &str) -> String {
        self.key(&format!("hold:{user_id}"))
    }

    fn state_key(&self, user_id: &str) -> String {
        self.key(&format!("now-playing:{user_id}"))
    }

    /// The channel now-playing changes are published on.
    pub(super) fn now_playing_channel(&self) -> String {
        self.key("now-playing")
    }

    /// How long a lease runs from a claim or a share: [`LEASE_TURNS`] polling intervals.
    fn lease_length(&self) -> Duration {
        self.inner.interval.mul_f64(LEASE_TURNS)
    }

    fn holder(&self, lease: PollLease) -> String {
        format!("{}|{}", self.inner.owner, lease.fence)
    }

    /// A user's shared state, read from Redis or received from another node: (user id,
    /// snapshot), `None` when unreadable, this node's own, or older than one already shown (a
    /// read that crossed a newer message).
    pub(super) fn decode_state(&self, json: &str) -> Option<(String, Snapshot)> {
        let state: SharedState = serde_json::from_str(json)
            .inspect_err(|err| tracing::warn!(error = %err, "unreadable shared now-playing state"))
            .ok()?;
        if state.origin == self.inner.owner {
            return None;
        }
        let order = (state.fence, state.shared_at_ms);
        let mut newer = true;
        self.inner
            .shown
            .entry_by_ref(&state.user_id)
            .and_upsert_with(|seen| match seen {
                Some(seen) if *seen.value() > order => {
                    newer = false;
                    *seen.value()
                }
                _ => order,
            });
        if !newer {
            return None;
        }
        let age = Duration::from_millis(unix_ms().saturating_sub(state.shared_at_ms));
        Some((state.user_id, state.snapshot.into_snapshot(age)))
    }
}

#[async_trait]
impl PollCoordinator for Cluster {
    async fn claim(&self, user_id: &str) -> Claim {
        let lease_length = self.lease_length();
        let lease_ms = millis(lease_length);
        let keys = [
            self.lease_key(user_id),
            self.key(&format!("fence:{user_id}")),
            self.hold_key(user_id),
            self.state_key(user_id),
        ];
        let owner = self.inner.owner.clone();
        let asked = Instant::now();
        let answer: Result<(i64, i64, Option<String>), _> = self
            .call(|mut connection| async move {
                CLAIM_SCRIPT
                    .key(&keys[..])
                    .arg(owner)
                    .arg(lease_ms)
                    .invoke_async(&mut connection)
                    .await
            })
            .await;
        match answer {
            Ok((taken @ (1 | 2), fence, _)) => {
                if taken == 2 {
                    self.inner.leases_taken.fetch_add(1, Ordering::Relaxed);
                }
                Claim::Poll(Some(PollLease {
                    fence: u64::try_from(fence).unwrap_or_default(),
                    holds_until: asked + lease_length,
                }))
            }
            Ok((_, wait_ms, state)) => {
                let wait = Duration::from_millis(u64::try_from(wait_ms).unwrap_or_default());
                Claim::Follow {
                    latest: state
                        .as_deref()
                        .and_then(|json| self.decode_state(json))
                        .map(|(_, snapshot)| snapshot),
                    retry_in: wait.clamp(MIN_RETRY, self.inner.interval.saturating_mul(2)),
                }
            }
            // Slow, not gone: polling alone would add a Spotify call, and a lease change when
            // the holder's lapses, to a cluster already behind. Claim again a quarter interval
            // later (a holder claims with a quarter interval or less left on its lease: that
            // lease may run out meanwhile, and the user change hands).
            Err(trouble) if self.only_slow(&trouble) => {
                self.inner.claims_deferred.fetch_add(1, Ordering::Relaxed);
                Claim::Follow {
                    latest: None,
                    retry_in: (self.inner.interval / 4).max(MIN_RETRY),
                }
            }
            // Redis cannot be reached: poll on our own.
            Err(_) => Claim::Poll(None),
        }
    }

    async fn share(
        &self,
        user_id: &str,
        lease: PollLease,
        snapshot: &Snapshot,
        changed: bool,
    ) -> Option<PollLease> {
        let wire = WireSnapshot::from_snapshot(snapshot)?;
        let state = SharedState {
            user_id: user_id.to_owned(),
            origin: self.inner.owner.clone(),
            fence: lease.fence,
            shared_at_ms: unix_ms(),
            snapshot: wire,
        };
        let json = serde_json::to_string(&state).ok()?;
        let keys = [
            self.lease_key(user_id),
            self.state_key(user_id),
            self.hold_key(user_id),
        ];
        let holder = self.holder(lease);
        let lifetime = millis(self.inner.interval.saturating_mul(STATE_TURNS));
        let lease_length = self.lease_length();
        let lease_ms = millis(lease_length);
        let channel = self.now_playing_channel();
        let asked = Instant::now();
        let shared: Result<i64, _> = self
            .call(|mut connection| async move {
                SHARE_SCRIPT
                    .key(&keys[..])
                    .arg(holder)
                    .arg(json)
                    .arg(lifetime)
                    .arg(channel)
                    .arg(if changed { "1" } else { "0" })
                    .arg(lease_ms)
                    .invoke_async(&mut connection)
                    .await
            })
            .await;
        match shared {
            Ok(1) => Some(PollLease {
                holds_until: asked + lease_length,
                ..lease
            }),
            Ok(_) => {
                tracing::debug!(node_id = %self.inner.node_id, %user_id, "lease lost while polling: state not shared");
                None
            }
            Err(_) => None,
        }
    }

    async fn hold(&self, user_id: &str, lease: PollLease, wait: Duration) {
        let keys = [self.lease_key(user_id), self.hold_key(user_id)];
        let holder = self.holder(lease);
        let _: Result<i64, _> = self
            .call(|mut connection| async move {
                HOLD_SCRIPT
                    .key(&keys[..])
                    .arg(holder)
                    .arg(millis(wait))
                    .invoke_async(&mut connection)
                    .await
            })
            .await;
    }

    async fn lift_hold(&self, user_id: &str) {
        let key = self.hold_key(user_id);
        let _: Result<i64, _> = self
            .call(|mut connection| async move {
                redis::cmd("DEL")
                    .arg(key)
                    .query_async(&mut connection)
                    .await
            })
            .await;
    }

    async fn release(&self, user_id: &str, lease: PollLease, due_in: Duration) {
        let key = self.lease_key(user_id);
        let holder = self.holder(lease);
        let left = u64::try_from(due_in.as_millis()).unwrap_or(u64::MAX);
        let _: Result<i64, _> = self
            .call(|mut connection| async move {
                RELEASE_SCRIPT
                    .key(key)
                    .arg(holder)
                    .arg(left)
                    .invoke_async(&mut connection)
                    .await
            })
            .await;
    }

    fn disconnected(&self, user_id: &str) {
        self.broadcast(Change::Credentials {
            user_id: user_id.to_owned(),
        });
    }
}
