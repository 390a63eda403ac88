//! Login throttling: too many failures for one identifier or one client IP within a window
//! answer `429` with `Retry-After` until the window ends.
//!
//! Counters live in a bounded cache (moka), so a flood of distinct identifiers evicts old
//! counters instead of exhausting memory; the per-IP limit still stops a flood from one address.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::sync::Cache;

use crate::config::ThrottleConfig;

/// Counters kept at most (identifiers and IPs together).
pub const MAX_TRACKED_KEYS: u64 = 100_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: DateTime<Utc>,
    failures: u32,
}

/// Failed-login counters per identifier and per client IP.
#[derive(Clone)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    windows: Cache<String, Arc<Mutex<Window>>>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("config", &self.config)
            .field("tracked", &self.windows.entry_count())
            .finish()
    }
}

fn identifier_key(identifier: &str) -> String {
    format!("id:{}", identifier.trim().to_lowercase())
}

fn ip_key(ip: IpAddr) -> String {
    format!("ip:{ip}")
}

impl LoginThrottle {
    /// Throttling with these limits, keeping at most `capacity` counters.
    pub fn new(config: ThrottleConfig, capacity: u64) -> Self {
        let windows = Cache::builder()
            .max_capacity(capacity)
            // Counters are dropped from memory once their window is surely over.
            .time_to_live(config.window)
            .build();
        LoginThrottle { config, windows }
    }

    fn window_length(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.config.window).unwrap_or(chrono::Duration::MAX)
    }

    /// How long `key` stays blocked at `now`, if it is.
    fn blocked_for(&self, key: &str, limit: u32, now: DateTime<Utc>) -> Option<Duration> {
        let window = self.windows.get(key)?;
        let window = *window.lock().unwrap_or_else(PoisonError::into_inner);
        let ends = window.started + self.window_length();
        (window.failures >= limit && now < ends).then(|| (ends - now).to_std().unwrap_or_default())
    }

    /// `Err(retry_after)` when the identifier or the IP has too many recent failures.
    pub fn check(
        &self,
        identifier: &str,
        ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), Duration> {
        let by_identifier = self.blocked_for(
            &identifier_key(identifier),
            self.config.max_failures_per_identifier,
            now,
        );
        let by_ip =
            ip.and_then(|ip| self.blocked_for(&ip_key(ip), self.config.max_failures_per_ip, now));
        match by_identifier.max(by_ip) {
            Some(retry_after) => Err(retry_after),
            None => Ok(()),
        }
    }

    /// Counts one failed attempt for the identifier and the IP.
    pub fn record_failure(&self, identifier: &str, ip: Option<IpAddr>, now: DateTime<Utc>) {
        self.bump(identifier_key(identifier), now);
        if let Some(ip) = ip {
            self.bump(ip_key(ip), now);
        }
    }

    /// Forgets the identifier's failures after a successful login (the IP's stay).
    pub fn clear(&self, identifier: &str) {
        self.windows.invalidate(&identifier_key(identifier));
    }

    fn bump(&self, key: String, now: DateTime<Utc>) {
        let window = self.windows.get_with(key, || {
            Arc::new(Mutex::new(Window {
                started: now,
                failures: 0,
            }))
        });
        let mut window = window.lock().unwrap_or_else(PoisonError::into_inner);
        if now >= window.started + self.window_length() {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(
            ThrottleConfig {
                max_failures_per_identifier: 5,
                max_failures_per_ip: 20,
                window: Duration::from_secs(900),
            },
            1000,
        )
    }

    #[test]
    fn identifier_blocks_after_five_failures_until_the_window_ends() {
        let throttle = throttle();
        let now = Utc::now();
        for _ in 0..4 {
            throttle.record_failure("Alice", None, now);
        }
        assert!(throttle.check("alice", None, now).is_ok());
        throttle.record_failure("alice ", None, now);
        let retry = throttle.check("ALICE", None, now).unwrap_err();
        assert_eq!(retry, Duration::from_secs(900));
        let later = now + chrono::Duration::seconds(600);
        assert_eq!(
            throttle.check("alice", None, later).unwrap_err(),
            Duration::from_secs(300)
        );
        assert!(
            throttle
                .check("alice", None, now + chrono::Duration::seconds(900))
                .is_ok()
        );
        assert!(throttle.check("bob", None, now).is_ok());
    }

    #[test]
    fn ip_blocks_after_twenty_failures_across_identifiers() {
        let throttle = throttle();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let now = Utc::now();
        for i in 0..20 {
            throttle.record_failure(&format!("user{i}"), Some(ip), now);
        }
        assert!(throttle.check("fresh", Some(ip), now).is_err());
        assert!(
            throttle
                .check("fresh", Some("192.0.2.8".parse().unwrap()), now)
                .is_ok()
        );
    }

    #[test]
    fn memory_is_bounded() {
        let throttle = LoginThrottle::new(throttle().config, 100);
        let now = Utc::now();
        for i in 0..10_000 {
            throttle.record_failure(&format!("flood{i}"), None, now);
        }
        throttle.windows.run_pending_tasks();
        assert!(throttle.windows.entry_count() <= 100);
    }
}
