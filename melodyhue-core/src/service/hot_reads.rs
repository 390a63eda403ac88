//! Copies of the two rows that overlays poll every second: a user's fallback color (`/color`,
//! `/infos` while nothing plays) and a public overlay (`/overlay/{id}`).
//!
//! Without them every poll is a database round trip. A copy is *fresh* for one polling
//! interval, the delay a track change already has; a change made through this server drops the
//! copy at once, so only a change made through another server over the same database is seen up
//! to one interval late. On a cluster node whose subscription is up, every change made through
//! another node is pushed here too, and a copy is fresh for 10 to 15 minutes (see
//! [`HotReads::set_pushed`]): only a change made behind the service's back, straight in the
//! database, or one whose every publication failed, waits for that.
//!
//! A copy read before a change is never kept as fresh after it: each read starts with
//! [`HotReads::read_started`], and a copy whose read started before the last change dropped
//! is not kept.
//!
//! A copy is kept, no longer fresh, for [`STALE_IF_ERROR`] after it was read: while the database
//! is unavailable, viewers get it instead of an error (RFC 5861's stale-if-error), marked as
//! stale by the API.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use super::{PUSHED_COPY_LIFETIME, Stale};
use crate::clock::jittered_lifetime;
use crate::color::Rgb;
use crate::model::Overlay;

/// Copies kept of each kind, bounding memory whatever the number of users polled.
const MAX_ENTRIES: u64 = 100_000;

/// How long a copy may still be served while the database is unavailable.
pub const STALE_IF_ERROR: Duration = Duration::from_secs(3600);

/// A value as read from the database, and when the read started.
#[derive(Clone)]
struct Kept<T> {
    value: T,
    read_at: Instant,
    /// Until when the copy is fresh while changes are pushed.
    pushed_fresh_until: Instant,
}

/// When a read of the database started: what [`HotReads`] keeps it by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadStarted(Instant);

pub(crate) struct HotReads {
    /// How long a copy is fresh while changes are not pushed: one polling interval.
    lifetime: Duration,
    /// Whether every change made on another node reaches this one (see [`HotReads::set_pushed`]).
    pushed: AtomicBool,
    /// Copies read before this are not fresh: changes may have been missed before it.
    resynced_at: Mutex<Instant>,
    /// The last time a copy was dropped for a change: a read that started before it may hold
    /// what the change replaced, and is not kept.
    changed_at: Mutex<Instant>,
    fallback_colors: Cache<String, Kept<Rgb>>,
    overlays: Cache<String, Kept<Overlay>>,
}

fn cache<T: Clone + Send + Sync + 'static>(lifetime: Duration) -> Cache<String, Kept<T>> {
    Cache::builder()
        .max_capacity(MAX_ENTRIES)
        .time_to_live(lifetime.max(STALE_IF_ERROR))
        .build()
}

fn lock(instant: &Mutex<Instant>) -> std::sync::MutexGuard<'_, Instant> {
    instant
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl HotReads {
    pub(crate) fn new(lifetime: Duration) -> Self {
        let start = Instant::now();
        HotReads {
            lifetime,
            pushed: AtomicBool::new(false),
            resynced_at: Mutex::new(start),
            changed_at: Mutex::new(start),
            fallback_colors: cache(lifetime),
            overlays: cache(lifetime),
        }
    }

    /// Whether every change made on another node reaches this one as it happens (a cluster
    /// node's subscription is up). While it does, copies are fresh for 10 to 15 minutes
    /// instead of one polling interval. When it starts to, every copy kept so far stops being
    /// fresh: changes made meanwhile were missed.
    pub(crate) fn set_pushed(&self, pushed: bool) {
        if pushed {
            self.changed(|| *lock(&self.resynced_at) = Instant::now());
        }
        self.pushed.store(pushed, Ordering::Release);
    }

    /// Call before reading what is then kept.
    pub(crate) fn read_started(&self) -> ReadStarted {
        ReadStarted(Instant::now())
    }

    fn fresh<T: Clone + Send + Sync + 'static>(
        &self,
        cache: &Cache<String, Kept<T>>,
        key: &str,
    ) -> Option<T> {
        let copy = cache.get(key)?;
        // `pushed` first: when it reads true, the resync that came with it is seen too.
        let pushed = self.pushed.load(Ordering::Acquire);
        if copy.read_at < *lock(&self.resynced_at) {
            return None;
        }
        let fresh = if pushed {
            Instant::now() < copy.pushed_fresh_until
        } else {
            copy.read_at.elapsed() < self.lifetime
        };
        fresh.then_some(copy.value)
    }

    fn stale<T: Clone + Send + Sync + 'static>(
        &self,
        cache: &Cache<String, Kept<T>>,
        key: &str,
    ) -> Option<(T, Stale)> {
        cache.get(key).map(|copy| {
            let fresh_for = if self.pushed.load(Ordering::Acquire) {
                copy.pushed_fresh_until - copy.read_at
            } else {
                self.lifetime
            };
            let stale = Stale {
                age: copy.read_at.elapsed(),
                fresh_for,
            };
            (copy.value, stale)
        })
    }

    fn keep<T: Clone + Send + Sync + 'static>(
        &self,
        cache: &Cache<String, Kept<T>>,
        key: &str,
        value: T,
        ReadStarted(read_at): ReadStarted,
    ) {
        // Checked and inserted under the lock that drops copies: a change cannot fall between.
        let changed_at = lock(&self.changed_at);
        if read_at < *changed_at {
            return;
        }
        let pushed_fresh_until = read_at + jittered_lifetime(PUSHED_COPY_LIFETIME);
        cache.insert(
            key.to_owned(),
            Kept {
                value,
                read_at,
                pushed_fresh_until,
            },
        );
        drop(changed_at);
    }

    /// Drops copies for a change (`invalidate`), refusing the copies of reads under way.
    fn changed(&self, invalidate: impl FnOnce()) {
        let mut changed_at = lock(&self.changed_at);
        *changed_at = Instant::now();
        invalidate();
    }

    pub(crate) fn fallback_color(&self, user_id: &str) -> Option<Rgb> {
        self.fresh(&self.fallback_colors, user_id)
    }

    /// The last fallback color read, however old (within [`STALE_IF_ERROR`]).
    pub(crate) fn stale_fallback_color(&self, user_id: &str) -> Option<(Rgb, Stale)> {
        self.stale(&self.fallback_colors, user_id)
    }

    pub(crate) fn keep_fallback_color(&self, user_id: &str, color: Rgb, read: ReadStarted) {
        self.keep(&self.fallback_colors, user_id, color, read);
    }

    pub(crate) fn overlay(&self, id: &str) -> Option<Overlay> {
        self.fresh(&self.overlays, id)
    }

    /// The last copy of an overlay read, however old (within [`STALE_IF_ERROR`]).
    pub(crate) fn stale_overlay(&self, id: &str) -> Option<(Overlay, Stale)> {
        self.stale(&self.overlays, id)
    }

    pub(crate) fn keep_overlay(&self, overlay: &Overlay, read: ReadStarted) {
        self.keep(&self.overlays, &overlay.id, overlay.clone(), read);
    }

    pub(crate) fn settings_changed(&self, user_id: &str) {
        self.changed(|| self.fallback_colors.invalidate(user_id));
    }

    pub(crate) fn overlay_changed(&self, id: &str) {
        self.changed(|| self.overlays.invalidate(id));
    }

    /// A deleted user takes their overlays along; which ones are cached is not worth tracking
    /// for so rare an event.
    pub(crate) fn user_deleted(&self, user_id: &str) {
        self.changed(|| {
            self.fallback_colors.invalidate(user_id);
            self.overlays.invalidate_all();
        });
    }
}
