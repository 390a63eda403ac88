//! How many mails one address, and one client IP, may cause: the budgets every route that sends
//! mail takes from before it does anything.
//!
//! [`MailBudget`] is the interface; [`LocalMailBudget`] counts in this process. A deployment of
//! several nodes needs the counts shared (e.g. in Redis) behind the same interface, so that the
//! budget holds whichever node a request reaches.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The budgets: at most `per_address` mails to one address and `per_ip` mail-sending requests
/// from one client IP within each `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailLimits {
    /// Mails one address may receive per window (`MAIL_MAX_PER_ADDRESS`, default 5).
    pub per_address: u32,
    /// Mail-sending requests one client IP may make per window (`MAIL_MAX_PER_IP`, default 20);
    /// `0` turns this budget off (behind a proxy that does not send the client's address).
    pub per_ip: u32,
    /// The window (`MAIL_LIMIT_WINDOW_SECONDS`, default one hour).
    pub window: Duration,
}

impl Default for MailLimits {
    fn default() -> Self {
        MailLimits {
            per_address: 5,
            per_ip: 20,
            window: Duration::from_secs(3600),
        }
    }
}

/// Whose budget a mail is taken from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BudgetKey {
    /// A recipient, by its [`canonical_email`](crate::model::canonical_email) form, so that
    /// spellings of one address share one budget.
    Address(String),
    /// The client that asked for the mail.
    Ip(IpAddr),
}

/// A store of mail budgets.
#[async_trait::async_trait]
pub trait MailBudget: Send + Sync + 'static {
    /// Atomically takes one unit from the budget of `key` at `now`: `Ok` when one was left,
    /// else `Err` with the time until the budget is refilled. Two concurrent takes of the last
    /// unit never both succeed.
    async fn take(&self, key: &BudgetKey, now: DateTime<Utc>) -> Result<(), Duration>;
}

/// Budgets counted in this process, in fixed windows per key that start at the key's first
/// take. At most [`LocalMailBudget::MAX_TRACKED_KEYS`] keys are kept (when full, windows that
/// ended go first, then the oldest), so the memory a flood of distinct keys can take is
/// bounded. One lock over all keys makes every take atomic.
pub struct LocalMailBudget {
    limits: MailLimits,
    windows: Mutex<HashMap<BudgetKey, Window>>,
}

impl std::fmt::Debug for LocalMailBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMailBudget")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: DateTime<Utc>,
    taken: u32,
}

impl LocalMailBudget {
    /// Keys tracked at most.
    pub const MAX_TRACKED_KEYS: u64 = 100_000;

    /// Budgets with these limits.
    pub fn new(limits: MailLimits) -> Self {
        LocalMailBudget {
            limits,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, key: &BudgetKey) -> u32 {
        match key {
            BudgetKey::Address(_) => self.limits.per_address,
            BudgetKey::Ip(_) => self.limits.per_ip,
        }
    }
}

#[async_trait::async_trait]
impl MailBudget for LocalMailBudget {
    async fn take(&self, key: &BudgetKey, now: DateTime<Utc>) -> Result<(), Duration> {
        let length =
            chrono::Duration::from_std(self.limits.window).unwrap_or(chrono::Duration::MAX);
        // A poisoned lock only means another take panicked; the counts are still sound.
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !windows.contains_key(key) && windows.len() as u64 >= Self::MAX_TRACKED_KEYS {
            windows.retain(|_, w| now < w.started + length);
            if windows.len() as u64 >= Self::MAX_TRACKED_KEYS {
                let oldest = windows
                    .iter()
                    .min_by_key(|(_, w)| w.started)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    windows.remove(&oldest);
                }
            }
        }
        let window = windows.entry(key.clone()).or_insert(Window {
            started: now,
            taken: 0,
        });
        if now >= window.started + length {
            window.started = now;
            window.taken = 0;
        }
        if window.taken < self.limit(key) {
            window.taken += 1;
            return Ok(());
        }
        let refill = (window.started + length - now)
            .to_std()
            .unwrap_or(Duration::ZERO);
        Err(refill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_budget_is_spent_then_refilled_after_its_window() {
        let budget = LocalMailBudget::new(MailLimits {
            per_address: 2,
            per_ip: 1,
            window: Duration::from_secs(60),
        });
        let start: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
        let ada = BudgetKey::Address("ada@example.com".into());
        let bob = BudgetKey::Address("bob@example.com".into());
        assert_eq!(budget.take(&ada, start).await, Ok(()));
        assert_eq!(budget.take(&ada, start).await, Ok(()));
        let later = start + chrono::Duration::seconds(20);
        assert_eq!(budget.take(&ada, later).await, Err(Duration::from_secs(40)));
        // Keys are independent, and each kind has its own limit.
        assert_eq!(budget.take(&bob, later).await, Ok(()));
        let ip = BudgetKey::Ip("192.0.2.1".parse().unwrap());
        assert_eq!(budget.take(&ip, later).await, Ok(()));
        assert!(budget.take(&ip, later).await.is_err());
        let next_window = start + chrono::Duration::seconds(60);
        assert_eq!(budget.take(&ada, next_window).await, Ok(()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_takes_never_exceed_the_budget() {
        let budget = std::sync::Arc::new(LocalMailBudget::new(MailLimits {
            per_address: 5,
            per_ip: 5,
            window: Duration::from_secs(60),
        }));
        let now = Utc::now();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(64));
        let takes: Vec<_> = (0..64)
            .map(|_| {
                let budget = std::sync::Arc::clone(&budget);
                let barrier = std::sync::Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    budget
                        .take(&BudgetKey::Address("x@example.com".into()), now)
                        .await
                        .is_ok()
                })
            })
            .collect();
        let mut granted = 0;
        for take in takes {
            granted += usize::from(take.await.unwrap());
        }
        assert_eq!(granted, 5);
    }
}
