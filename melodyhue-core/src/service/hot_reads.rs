//! Copies of the two rows that overlays poll every second: a user's fallback color (`/color`,
//! `/infos` while nothing plays) and a public overlay (`/overlay/{id}`).
//!
//! Without them every poll is a database round trip. A copy is *fresh* for one polling
//! interval, the delay a track change already has; a change made through this server drops the
//! copy at once, so only a change made through another server over the same database is seen up
//! to one interval late.
//!
//! A copy is kept, no longer fresh, for [`STALE_IF_ERROR`] after it was read: while the database
//! is unavailable, viewers get it instead of an error (RFC 5861's stale-if-error), marked as
//! stale by the API.

use std::time::{Duration, Instant};

use moka::sync::Cache;

use super::Stale;
use crate::color::Rgb;
use crate::model::Overlay;

/// Copies kept of each kind, bounding memory whatever the number of users polled.
const MAX_ENTRIES: u64 = 100_000;

/// How long a copy may still be served while the database is unavailable.
pub const STALE_IF_ERROR: Duration = Duration::from_secs(3600);

/// A value as read from the database, and when.
#[derive(Clone)]
struct Kept<T> {
    value: T,
    read_at: Instant,
}

pub(crate) struct HotReads {
    /// How long a copy is fresh.
    lifetime: Duration,
    fallback_colors: Cache<String, Kept<Rgb>>,
    overlays: Cache<String, Kept<Overlay>>,
}

fn cache<T: Clone + Send + Sync + 'static>(lifetime: Duration) -> Cache<String, Kept<T>> {
    Cache::builder()
        .max_capacity(MAX_ENTRIES)
        .time_to_live(lifetime.max(STALE_IF_ERROR))
        .build()
}

impl HotReads {
    pub(crate) fn new(lifetime: Duration) -> Self {
        HotReads {
            lifetime,
            fallback_colors: cache(lifetime),
            overlays: cache(lifetime),
        }
    }

    fn fresh<T: Clone + Send + Sync + 'static>(
        &self,
        cache: &Cache<String, Kept<T>>,
        key: &str,
    ) -> Option<T> {
        cache
            .get(key)
            .filter(|copy| copy.read_at.elapsed() < self.lifetime)
            .map(|copy| copy.value)
    }

    fn stale<T: Clone + Send + Sync + 'static>(
        cache: &Cache<String, Kept<T>>,
        key: &str,
    ) -> Option<(T, Stale)> {
        cache.get(key).map(|copy| {
            let stale = Stale {
                age: copy.read_at.elapsed(),
            };
            (copy.value, stale)
        })
    }

    fn keep<T: Clone + Send + Sync + 'static>(cache: &Cache<String, Kept<T>>, key: &str, value: T) {
        let read_at = Instant::now();
        cache.insert(key.to_owned(), Kept { value, read_at });
    }

    pub(crate) fn fallback_color(&self, user_id: &str) -> Option<Rgb> {
        self.fresh(&self.fallback_colors, user_id)
    }

    /// The last fallback color read, however old (within [`STALE_IF_ERROR`]).
    pub(crate) fn stale_fallback_color(&self, user_id: &str) -> Option<(Rgb, Stale)> {
        Self::stale(&self.fallback_colors, user_id)
    }

    pub(crate) fn keep_fallback_color(&self, user_id: &str, color: Rgb) {
        Self::keep(&self.fallback_colors, user_id, color);
    }

    pub(crate) fn overlay(&self, id: &str) -> Option<Overlay> {
        self.fresh(&self.overlays, id)
    }

    /// The last copy of an overlay read, however old (within [`STALE_IF_ERROR`]).
    pub(crate) fn stale_overlay(&self, id: &str) -> Option<(Overlay, Stale)> {
        Self::stale(&self.overlays, id)
    }

    pub(crate) fn keep_overlay(&self, overlay: &Overlay) {
        Self::keep(&self.overlays, &overlay.id, overlay.clone());
    }

    pub(crate) fn settings_changed(&self, user_id: &str) {
        self.fallback_colors.invalidate(user_id);
    }

    pub(crate) fn overlay_changed(&self, id: &str) {
        self.overlays.invalidate(id);
    }

    /// A deleted user takes their overlays along; which ones are cached is not worth tracking
    /// for so rare an event.
    pub(crate) fn user_deleted(&self, user_id: &str) {
        self.fallback_colors.invalidate(user_id);
        self.overlays.invalidate_all();
    }
}
