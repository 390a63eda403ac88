//! The colors of covers, shared by every user through one bounded cache.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

use super::HubInner;
use crate::color::{self, ColorReport};

/// Covers kept in memory.
const COVER_CACHE_ENTRIES: u64 = 10_000;
/// How long a cover's colors are kept.
const COVER_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a failed cover is remembered before it is tried again.
const COVER_FAILURE_TTL: Duration = Duration::from_secs(60);

/// A cover's colors, or why it could not be used.
pub(super) type CoverOutcome = Result<Arc<ColorReport>, Arc<str>>;

/// Keeps covers for a day, failures for a minute.
struct CoverExpiry;

impl Expiry<String, CoverOutcome> for CoverExpiry {
    fn expire_after_create(
        &self,
        _url: &String,
        outcome: &CoverOutcome,
        _now: Instant,
    ) -> Option<Duration> {
        Some(if outcome.is_ok() {
            COVER_TTL
        } else {
            COVER_FAILURE_TTL
        })
    }
}

/// An empty cache of covers by URL: at most [`COVER_CACHE_ENTRIES`], each kept as
/// [`CoverExpiry`] says.
pub(super) fn cache() -> Cache<String, CoverOutcome> {
    Cache::builder()
        .max_capacity(COVER_CACHE_ENTRIES)
        .expire_after(CoverExpiry)
        .build()
}

/// The colors of a cover, from the shared cache or by downloading and analysing it once.
pub(super) async fn cover(hub: &HubInner, url: &str) -> Option<Arc<ColorReport>> {
    hub.counters.cover_lookups.fetch_add(1, Ordering::Relaxed);
    // Concurrent lookups of one URL share one download (moka coalesces the init).
    let outcome = hub
        .covers
        .get_with(url.to_owned(), async {
            hub.counters.cover_misses.fetch_add(1, Ordering::Relaxed);
            analyse_cover(hub, url).await
        })
        .await;
    outcome
        .inspect_err(
            |reason| tracing::debug!(%url, %reason, "cover unusable; showing the fallback color"),
        )
        .ok()
}

async fn analyse_cover(hub: &HubInner, url: &str) -> CoverOutcome {
    let bytes = hub
        .client
        .fetch_image(url, &hub.images)
        .await
        .map_err(|err| Arc::<str>::from(err.to_string()))?;
    // Decoding is CPU work: keep it off the async workers.
    tokio::task::spawn_blocking(move || color::analyze(&bytes))
        .await
        .map_err(|err| Arc::<str>::from(err.to_string()))?
        .map(Arc::new)
        .map_err(|err| Arc::<str>::from(err.to_string()))
}
