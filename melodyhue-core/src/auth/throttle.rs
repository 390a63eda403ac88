//! Failure budgets: how many wrong passwords or 2FA codes one account, identifier or client
//! network may try within a window before it is answered `429` with `Retry-After`.
//!
//! A budget is spent **before** the guess is checked, atomically: [`AttemptBudget::reserve`]
//! takes one unit from every key of an attempt (the account and the client network), all or
//! none, and the attempt is checked only if it got them. A right guess gives its units back
//! ([`AttemptBudget::refund`]); a wrong one keeps them spent; so does a request that never
//! finishes (its unit lapses with the window). Concurrent guesses therefore cannot overdraw a
//! budget: of 100 guesses sent at the same instant, at most `limit` find a unit to take, and
//! the others cost no password hash.
//!
//! [`AttemptBudget`] is the interface; [`InMemoryBudget`] keeps the counters of one process. A
//! store shared by several nodes (Redis: a script that checks and increments the keys of one
//! attempt together) is a second implementation of the same trait.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use moka::sync::Cache;

/// Counters kept at most by [`InMemoryBudget`] (accounts, identifiers and networks together).
pub const MAX_TRACKED_KEYS: u64 = 100_000;

/// One counter an attempt spends from, and how many units it holds per window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetKey {
    /// What is counted, e.g. `account:<user id>` or `ip:192.0.2.7`.
    pub key: String,
    /// Units per window.
    pub limit: u32,
}

impl BudgetKey {
    /// The budget of client network `ip` (see [`client_network`]) with `limit` units.
    pub fn client(ip: IpAddr, limit: u32) -> Self {
        BudgetKey {
            key: format!("ip:{}", client_network(ip)),
            limit,
        }
    }
}

/// The units one [`AttemptBudget::reserve`] took, to give back with
/// [`AttemptBudget::refund`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// One unit per key.
    pub units: Vec<ReservedUnit>,
}

/// One unit taken from one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedUnit {
    /// The key.
    pub key: String,
    /// Which window of the key the unit came from (an implementation's own mark, e.g. when
    /// the window started), so that a refund never adds to a later window.
    pub window: i64,
}

/// Budgets of attempts per key and window; see the [module documentation](self).
#[async_trait]
pub trait AttemptBudget: Send + Sync + fmt::Debug {
    /// Takes one unit from every key, atomically: all of them, or none when one key has no
    /// unit left. `Err(retry_after)` in that case: the time until the emptiest refusing key's
    /// window ends.
    async fn reserve(
        &self,
        keys: &[BudgetKey],
        now: DateTime<Utc>,
    ) -> Result<Reservation, Duration>;

    /// Gives back the units of an attempt that was right, or that was never checked.
    async fn refund(&self, reservation: Reservation);

    /// Forgets every unit spent from `key` (a successful login forgets its account's failures).
    async fn forget(&self, key: &str);
}

/// The network a client address stands for: IPv4 addresses as they are, IPv6 addresses by
/// their /64 prefix (one subscriber's allocation, RFC 6177 §2), IPv4-mapped IPv6 as IPv4.
/// Per-client limits count networks, so an IPv6 client cannot reset them by changing the low
/// bits of its address.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: DateTime<Utc>,
    spent: u32,
}

/// An [`AttemptBudget`] in this process's memory.
///
/// Counters live in a bounded cache (moka): a flood of distinct identifiers evicts old
/// counters instead of exhausting memory (the per-network budget still stops a flood from one
/// network). A window starts with the first unit spent from an empty counter.
#[derive(Clone)]
pub struct InMemoryBudget {
    window: Duration,
    counters: Cache<String, Arc<Mutex<Window>>>,
}

impl fmt::Debug for InMemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryBudget")
            .field("window", &self.window)
            .field("tracked", &self.counters.entry_count())
            .finish()
    }
}

fn lock(window: &Mutex<Window>) -> MutexGuard<'_, Window> {
    window.lock().unwrap_or_else(PoisonError::into_inner)
}

impl InMemoryBudget {
    /// Budgets over windows of `window`, keeping at most `capacity` counters.
    pub fn new(window: Duration, capacity: u64) -> Self {
        let counters = Cache::builder()
            .max_capacity(capacity)
            // A counter untouched for a whole window holds nothing worth keeping.
            .time_to_idle(window)
            .build();
        InMemoryBudget { window, counters }
    }

    fn window_length(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::MAX)
    }

    fn counter(&self, key: &str) -> Arc<Mutex<Window>> {
        self.counters.get_with_by_ref(key, || {
            Arc::new(Mutex::new(Window {
                started: DateTime::<Utc>::MIN_UTC,
                spent: 0,
            }))
        })
    }
}

#[async_trait]
impl AttemptBudget for InMemoryBudget {
    async fn reserve(
        &self,
        keys: &[BudgetKey],
        now: DateTime<Utc>,
    ) -> Result<Reservation, Duration> {
        // Locked in one global order (by key), so two attempts sharing keys cannot deadlock.
        let mut keys: Vec<&BudgetKey> = keys.iter().collect();
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        keys.dedup_by(|a, b| a.key == b.key);
        let counters: Vec<_> = keys.iter().map(|k| self.counter(&k.key)).collect();
        let mut guards: Vec<_> = counters.iter().map(|c| lock(c)).collect();
        let length = self.window_length();
        let mut refused: Option<Duration> = None;
        for (key, window) in keys.iter().zip(guards.iter_mut()) {
            if window.spent == 0 || now >= window.started + length {
                **window = Window {
                    started: now,
                    spent: 0,
                };
            }
            if window.spent >= key.limit {
                let left = (window.started + length - now).to_std().unwrap_or_default();
                refused = Some(refused.map_or(left, |r| r.max(left)));
            }
        }
        if let Some(retry_after) = refused {
            return Err(retry_after);
        }
        let units = keys
            .iter()
            .zip(guards.iter_mut())
            .map(|(key, window)| {
                window.spent += 1;
                ReservedUnit {
                    key: key.key.clone(),
                    window: window.started.timestamp_micros(),
                }
            })
            .collect();
        Ok(Reservation { units })
    }

    async fn refund(&self, reservation: Reservation) {
        for unit in reservation.units {
            if let Some(counter) = self.counters.get(&unit.key) {
                let mut window = lock(&counter);
                if window.started.timestamp_micros() == unit.window {
                    window.spent = window.spent.saturating_sub(1);
                }
            }
        }
    }

    async fn forget(&self, key: &str) {
        self.counters.invalidate(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> InMemoryBudget {
        InMemoryBudget::new(Duration::from_secs(900), 1000)
    }

    fn account(limit: u32) -> BudgetKey {
        BudgetKey {
            key: "account:alice".into(),
            limit,
        }
    }

    #[tokio::test]
    async fn a_key_gives_its_limit_then_refuses_until_the_window_ends() {
        let budget = budget();
        let now = Utc::now();
        for _ in 0..5 {
            budget.reserve(&[account(5)], now).await.unwrap();
        }
        assert_eq!(
            budget.reserve(&[account(5)], now).await.unwrap_err(),
            Duration::from_secs(900)
        );
        let later = now + chrono::Duration::seconds(600);
        assert_eq!(
            budget.reserve(&[account(5)], later).await.unwrap_err(),
            Duration::from_secs(300)
        );
        let over = now + chrono::Duration::seconds(900);
        assert!(budget.reserve(&[account(5)], over).await.is_ok());
    }

    #[tokio::test]
    async fn reserving_is_all_or_nothing() {
        let budget = budget();
        let now = Utc::now();
        let ip = BudgetKey::client("192.0.2.7".parse().unwrap(), 1);
        budget
            .reserve(std::slice::from_ref(&ip), now)
            .await
            .unwrap();
        // The network is spent, so the account must not lose a unit either.
        assert!(budget.reserve(&[account(1), ip], now).await.is_err());
        assert!(budget.reserve(&[account(1)], now).await.is_ok());
    }

    #[tokio::test]
    async fn refunds_give_back_and_never_feed_a_later_window() {
        let budget = budget();
        let now = Utc::now();
        let first = budget.reserve(&[account(1)], now).await.unwrap();
        assert!(budget.reserve(&[account(1)], now).await.is_err());
        budget.refund(first).await;
        let second = budget.reserve(&[account(1)], now).await.unwrap();
        // A unit of an ended window given back late does not lend the new window a unit.
        let later = now + chrono::Duration::seconds(901);
        let _third = budget.reserve(&[account(1)], later).await.unwrap();
        budget.refund(second).await;
        assert!(budget.reserve(&[account(1)], later).await.is_err());
        budget.forget("account:alice").await;
        assert!(budget.reserve(&[account(1)], later).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reservations_never_overdraw() {
        let budget = Arc::new(budget());
        let now = Utc::now();
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let budget = Arc::clone(&budget);
                tokio::spawn(async move { budget.reserve(&[account(5)], now).await.is_ok() })
            })
            .collect();
        let mut granted = 0;
        for task in tasks {
            granted += usize::from(task.await.unwrap());
        }
        assert_eq!(granted, 5);
    }

    #[test]
    fn ipv6_clients_count_by_their_64_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_network(a), client_network(b));
        assert_ne!(client_network(a), client_network(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            client_network(mapped),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[tokio::test]
    async fn memory_is_bounded() {
        let budget = InMemoryBudget::new(Duration::from_secs(900), 100);
        let now = Utc::now();
        for i in 0..10_000 {
            let key = BudgetKey {
                key: format!("identifier:flood{i}"),
                limit: 5,
            };
            budget.reserve(&[key], now).await.unwrap();
        }
        budget.counters.run_pending_tasks();
        assert!(budget.counters.entry_count() <= 100);
    }
}
