//! Time as the services see it, injectable so that expiry, bans and the purge job can be
//! tested without waiting.

use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};

/// A source of the current time. Implementations return UTC times truncated to milliseconds,
/// the precision every backend stores.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        to_millis(Utc::now())
    }
}

/// The real clock shifted by an offset that can be moved: for tests and simulations that need
/// tokens to expire or bans to end without waiting.
#[derive(Debug, Clone, Default)]
pub struct OffsetClock {
    offset: Arc<Mutex<Duration>>,
}

impl OffsetClock {
    /// A clock showing the real time (offset zero).
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(PoisonError::into_inner);
        *offset += by;
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        let offset = *self.offset.lock().unwrap_or_else(PoisonError::into_inner);
        to_millis(Utc::now() + offset)
    }
}

/// `base` to 1.5 times `base`, at random: the lifetime of a copy read from the database, so
/// that copies read together (after a start) are not all read again together.
pub(crate) fn jittered_lifetime(base: std::time::Duration) -> std::time::Duration {
    base + random_part(0.5, base)
}

/// A random duration from zero to `share` of `of`: the jitter that keeps expiries set together
/// (copies read together after a start) from falling due together (a cache stampede).
pub(crate) fn random_part(share: f64, of: std::time::Duration) -> std::time::Duration {
    of.mul_f64(share * rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_parts_stay_within_their_share() {
        let hour = std::time::Duration::from_secs(3600);
        let parts: Vec<_> = (0..200).map(|_| random_part(0.1, hour)).collect();
        assert!(parts.iter().all(|part| *part < hour / 10));
        assert!(parts.iter().any(|part| *part < hour / 20));
        assert!(parts.iter().any(|part| *part >= hour / 20));
    }
}
