//! Short-lived copies of the two rows that overlays poll every second: a user's fallback color
//! (`/color`, `/infos` while nothing plays) and a public overlay (`/overlay/{id}`).
//!
//! Without them every poll is a database round trip. A copy lives at most one polling
//! interval, the delay a track change already has; a change made through this server drops
//! the copy at once, so only a change made through another server over the same database is
//! seen up to one interval late.

use std::time::Duration;

use moka::sync::Cache;

use crate::color::Rgb;
use crate::model::Overlay;

/// Copies kept of each kind, bounding memory whatever the number of users polled.
const MAX_ENTRIES: u64 = 100_000;

pub(crate) struct HotReads {
    fallback_colors: Cache<String, Rgb>,
    overlays: Cache<String, Overlay>,
}

impl HotReads {
    pub(crate) fn new(lifetime: Duration) -> Self {
        HotReads {
            fallback_colors: Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(lifetime)
                .build(),
            overlays: Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(lifetime)
                .build(),
        }
    }

    pub(crate) fn fallback_color(&self, user_id: &str) -> Option<Rgb> {
        self.fallback_colors.get(user_id)
    }

    pub(crate) fn keep_fallback_color(&self, user_id: &str, color: Rgb) {
        self.fallback_colors.insert(user_id.to_owned(), color);
    }

    pub(crate) fn overlay(&self, id: &str) -> Option<Overlay> {
        self.overlays.get(id)
    }

    pub(crate) fn keep_overlay(&self, overlay: &Overlay) {
        self.overlays.insert(overlay.id.clone(), overlay.clone());
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
