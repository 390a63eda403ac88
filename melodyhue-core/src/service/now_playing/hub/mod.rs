//! The now-playing hub: one per server, it polls Spotify for the users someone is watching and
//! keeps the latest state of each in memory for `/color`, `/infos` and `/ws`.
//!
//! - A user is *watched* while a `/color` or `/infos` request came in the last
//!   [`WATCH_WINDOW`], or a WebSocket is open. Nobody else is polled.
//! - Each watched user has one feed task: at most one currently-playing call per polling
//!   interval, however many viewers; requests only read the feed's latest snapshot. The first
//!   requests for a user wait for the first poll, but never longer than [`VIEWER_WAIT`]: a
//!   slower Spotify gets the fallback, and the poll goes on in the background.
//! - A `429` stops the user's polls for its whole `Retry-After`; failures and timeouts back off
//!   exponentially. Both are remembered when the feed stops, so a feed started again for a
//!   failing user neither polls early nor makes its first viewer wait.
//! - The hub keeps one copy of each user's connection (app, refresh token, access token),
//!   which outlives feeds. A refresh token Spotify rotates replaces the stored one by
//!   compare-and-set, so a newer token stored meanwhile (by a callback, or by another server on
//!   the same database) is never overwritten; when a refresh token is refused
//!   (`invalid_grant`), only that token is cleared, and only if it is still the stored one —
//!   otherwise the stored one is tried.
//! - Covers are downloaded and analysed once per image URL for all users, through a bounded
//!   cache; failures are remembered briefly so a broken cover is not fetched every poll.
//! - Several nodes ([`NowPlayingHub::coordinate`]): before a poll the feed asks the
//!   [`PollCoordinator`] whether this node polls the user (unless the lease its last poll
//!   renewed still runs long enough); if another does, the feed shows what
//!   that node shares ([`NowPlayingHub::apply_remote`]), and subscribers are woken exactly as
//!   by a poll of this node. While changes made on other nodes are pushed to the hub
//!   ([`NowPlayingHub::set_credentials_pushed`]), connection copies are read again far less
//!   often; a node that takes a user over reads the user's connection again.
//!
//! This module holds what viewers and subscribers use; the feed task and its polls are in
//! `polling`, the copy of each user's connection in `connection`, the cover cache in `covers`.

mod connection;
mod covers;
mod polling;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use moka::future::Cache;
use tokio::sync::{Notify, watch};

use self::connection::ConnectionSlot;
use self::covers::CoverOutcome;
use self::polling::{Backoff, run_feed};
use super::coordination::PollCoordinator;
use crate::color::ColorReport;
use crate::secrets::SecretBox;
use crate::spotify::{CurrentlyPlaying, ImagePolicy, SpotifyClient};
use crate::store::Store;

/// How long a `/color` or `/infos` request keeps a user watched.
pub const WATCH_WINDOW: Duration = Duration::from_secs(30);
/// The longest a viewer waits for Spotify: the first poll of a user, if it takes longer, is
/// answered with the fallback and finishes in the background.
pub const VIEWER_WAIT: Duration = Duration::from_secs(1);

/// What is shown for a track or episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayingItem {
    /// What Spotify reported.
    pub item: CurrentlyPlaying,
    /// The cover's colors, when the cover could be analysed.
    pub cover: Option<Arc<ColorReport>>,
    /// When Spotify reported it (progress advances from here while playing).
    pub observed_at: Instant,
}

impl PlayingItem {
    /// The position now, extrapolated from the last poll while playing, and never beyond a
    /// known duration; `None` when Spotify did not report one.
    pub fn progress_ms(&self) -> Option<u64> {
        let reported = self.item.progress_ms?;
        let elapsed = if self.item.is_playing {
            u64::try_from(self.observed_at.elapsed().as_millis()).unwrap_or(u64::MAX)
        } else {
            0
        };
        let progress = reported.saturating_add(elapsed);
        Some(self.item.duration_ms.map_or(progress, |d| progress.min(d)))
    }

    /// The cover color, only while actually playing.
    pub fn playing_color(&self) -> Option<&ColorReport> {
        self.cover.as_deref().filter(|_| self.item.is_playing)
    }

    /// Whether both show the same: every detail of the item and the cover's colors. The
    /// position is left out: it moves all the time.
    fn shows_same(&self, other: &PlayingItem) -> bool {
        let without_progress = |item: &CurrentlyPlaying| CurrentlyPlaying {
            progress_ms: None,
            ..item.clone()
        };
        without_progress(&self.item) == without_progress(&other.item)
            && self.cover.as_deref() == other.cover.as_deref()
    }
}

/// The latest known state of one user's player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snapshot {
    /// The first poll has not finished.
    Pending,
    /// No Spotify account connected (or its refresh token was refused).
    Disconnected,
    /// Nothing to show: nothing loaded, an ad, an unknown item, or Spotify unavailable.
    Idle,
    /// A track or episode is loaded (playing or paused).
    Playing(Box<PlayingItem>),
}

impl Snapshot {
    /// Whether `/ws` listeners would see no difference (see [`PlayingItem`]'s comparison).
    fn shows_same(&self, other: &Snapshot) -> bool {
        match (self, other) {
            (Snapshot::Playing(a), Snapshot::Playing(b)) => a.shows_same(b),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

/// Counters of the hub, for metrics and load tests (Spotify calls by outcome are counted by
/// the client: [`SpotifyClient::call_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Users polled now.
    pub watched_users: usize,
    /// Cover lookups (one per poll of a playing item).
    pub cover_lookups: u64,
    /// Lookups that had to download and analyse the image (the rest were cache hits).
    pub cover_misses: u64,
    /// Viewers answered with the fallback because nothing was known of the user within
    /// [`VIEWER_WAIT`] (the first poll, or the polling node's state, came later).
    pub late_first_answers: u64,
}

#[derive(Default)]
struct Counters {
    cover_lookups: AtomicU64,
    cover_misses: AtomicU64,
    late_first_answers: AtomicU64,
}

/// One watched user.
struct Feed {
    user_id: String,
    /// When the last `/color` or `/infos` request came.
    last_seen: Mutex<Instant>,
    /// Open WebSockets.
    sockets: AtomicUsize,
    snapshot: watch::Sender<Snapshot>,
    /// Wakes the feed early (credentials changed).
    wake: Notify,
}

impl Feed {
    fn is_watched(&self) -> bool {
        self.sockets.load(Ordering::Acquire) > 0 || lock(&self.last_seen).elapsed() < WATCH_WINDOW
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stores the new snapshot, waking subscribers only when what they show changed (returned).
fn publish(feed: &Feed, next: Snapshot) -> bool {
    feed.snapshot.send_if_modified(|current| {
        let changed = !current.shows_same(&next);
        *current = next;
        changed
    })
}

struct HubInner {
    client: SpotifyClient,
    store: Arc<dyn Store>,
    secrets: SecretBox,
    images: ImagePolicy,
    interval: Duration,
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
    /// Connections outlive feeds: a user watched again costs no token call, and a rotated
    /// refresh token not yet stored is not lost.
    connections: Mutex<HashMap<String, ConnectionSlot>>,
    /// Whether changes of connections made elsewhere are pushed to this hub (see
    /// [`NowPlayingHub::set_credentials_pushed`]).
    credentials_pushed: AtomicBool,
    /// Moves (under the `connections` lock) each time `credentials_pushed` does: a poll that
    /// read a connection before does not keep its copy as fresh.
    connections_epoch: AtomicU64,
    /// Failing users outlive feeds too: a restarted feed must not poll early, nor make its
    /// first viewer wait for a Spotify known to fail.
    backoffs: Mutex<HashMap<String, Backoff>>,
    covers: Cache<String, CoverOutcome>,
    counters: Counters,
    /// Set when several nodes share the users (`crate::cluster`).
    coordinator: OnceLock<Arc<dyn PollCoordinator>>,
}

/// The now-playing hub. Cheap to clone.
#[derive(Clone)]
pub struct NowPlayingHub {
    inner: Arc<HubInner>,
}

impl std::fmt::Debug for NowPlayingHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NowPlayingHub")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Keeps a user watched while alive (one per open WebSocket).
pub struct Subscription {
    feed: Arc<Feed>,
    /// Changes of the user's snapshot.
    pub updates: watch::Receiver<Snapshot>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.feed.sockets.fetch_sub(1, Ordering::AcqRel);
        // The request window may still keep the feed alive; it checks on its next tick.
        *lock(&self.feed.last_seen) = Instant::now();
    }
}

impl NowPlayingHub {
    /// A hub polling every `interval`, downloading covers as `images` allows.
    pub fn new(
        client: SpotifyClient,
        store: Arc<dyn Store>,
        secrets: SecretBox,
        images: ImagePolicy,
        interval: Duration,
    ) -> Self {
        NowPlayingHub {
            inner: Arc::new(HubInner {
                client,
                store,
                secrets,
                images,
                interval,
                feeds: Mutex::new(HashMap::new()),
                connections: Mutex::new(HashMap::new()),
                credentials_pushed: AtomicBool::new(false),
                connections_epoch: AtomicU64::new(0),
                backoffs: Mutex::new(HashMap::new()),
                covers: covers::cache(),
                counters: Counters::default(),
                coordinator: OnceLock::new(),
            }),
        }
    }

    /// Marks `user_id` watched (starting its feed if needed) and returns its latest snapshot,
    /// waiting at most [`VIEWER_WAIT`] for the first poll (then [`Snapshot::Idle`]: the
    /// fallback). The caller has checked that the user exists.
    pub async fn watch(&self, user_id: &str) -> Snapshot {
        let feed = self.feed(user_id, |feed| *lock(&feed.last_seen) = Instant::now());
        let mut updates = feed.snapshot.subscribe();
        let first = tokio::time::timeout(
            VIEWER_WAIT,
            updates.wait_for(|s| !matches!(s, Snapshot::Pending)),
        )
        .await;
        match first {
            Ok(Ok(snapshot)) => snapshot.clone(),
            _ => {
                self.inner
                    .counters
                    .late_first_answers
                    .fetch_add(1, Ordering::Relaxed);
                // Spotify is slower than our patience: the fallback now, and for the next
                // viewers too until the poll ends (which wakes subscribers if it shows more).
                feed.snapshot.send_if_modified(|snapshot| {
                    if matches!(snapshot, Snapshot::Pending) {
                        *snapshot = Snapshot::Idle;
                    }
                    false
                });
                Snapshot::Idle
            }
        }
    }

    /// The latest snapshot of a user already being polled, without marking them watched.
    pub fn peek(&self, user_id: &str) -> Option<Snapshot> {
        let feeds = lock(&self.inner.feeds);
        feeds
            .get(user_id)
            .map(|feed| feed.snapshot.borrow().clone())
    }

    /// Keeps `user_id` watched until the subscription is dropped, and streams their changes.
    pub fn subscribe(&self, user_id: &str) -> Subscription {
        let feed = self.feed(user_id, |feed| {
            feed.sockets.fetch_add(1, Ordering::AcqRel);
        });
        Subscription {
            updates: feed.snapshot.subscribe(),
            feed,
        }
    }

    /// The user's credentials changed: read them again before the next call to Spotify,
    /// forget their failures, and poll again at once.
    pub fn credentials_changed(&self, user_id: &str) {
        connection::credentials_changed(&self.inner, user_id);
        lock(&self.inner.backoffs).remove(user_id);
        if let Some(feed) = lock(&self.inner.feeds).get(user_id) {
            feed.wake.notify_one();
        }
    }

    /// Whether every change of a connection made on another node reaches this hub as it happens
    /// (through [`NowPlayingHub::credentials_changed`]): `true` while a cluster node's
    /// subscription is up. The database is then read again only every 10 to 15 minutes per user
    /// (otherwise every 60 to 90 s), as a safety net. Each time it becomes `true`, every copy
    /// is read again before its next use (changes made while it was not were missed); `false`
    /// brings every copy back to the shorter lifetime.
    pub fn set_credentials_pushed(&self, pushed: bool) {
        connection::set_credentials_pushed(&self.inner, pushed);
    }

    /// The user changed their connection by hand: ends the hold the cluster may keep on them
    /// (a refusal's pause, a `429`'s wait), before the change is announced. Nothing to do on one
    /// node, where [`NowPlayingHub::credentials_changed`] ends the wait.
    pub async fn lift_hold(&self, user_id: &str) {
        if let Some(coordinator) = self.inner.coordinator.get() {
            coordinator.lift_hold(user_id).await;
        }
    }

    /// Something shown beside the snapshot changed (the user's fallback color): wakes the
    /// user's subscribers so that they look again.
    pub fn display_changed(&self, user_id: &str) {
        if let Some(feed) = lock(&self.inner.feeds).get(user_id) {
            feed.snapshot.send_modify(|_| {});
        }
    }

    /// Shares the polling of users with other nodes through `coordinator` (once; later calls
    /// are ignored). Feeds started before keep polling on their own until their next claim.
    pub fn coordinate(&self, coordinator: Arc<dyn PollCoordinator>) {
        let _ = self.inner.coordinator.set(coordinator);
    }

    /// Another node polled `user_id` and shared `snapshot`: shown at once to this node's
    /// viewers and subscribers, when anyone here watches the user (otherwise ignored).
    pub fn apply_remote(&self, user_id: &str, snapshot: Snapshot) {
        let feed = lock(&self.inner.feeds).get(user_id).cloned();
        if let Some(feed) = feed {
            publish(&feed, snapshot);
        }
    }

    /// Counters.
    pub fn stats(&self) -> HubStats {
        let c = &self.inner.counters;
        HubStats {
            watched_users: lock(&self.inner.feeds).len(),
            cover_lookups: c.cover_lookups.load(Ordering::Relaxed),
            cover_misses: c.cover_misses.load(Ordering::Relaxed),
            late_first_answers: c.late_first_answers.load(Ordering::Relaxed),
        }
    }

    /// The user's feed, started if needed, with `mark` applied while the feed map is locked:
    /// a feed task decides to stop under the same lock, so a marked feed is never a stopping one.
    fn feed(&self, user_id: &str, mark: impl FnOnce(&Feed)) -> Arc<Feed> {
        let mut feeds = lock(&self.inner.feeds);
        if let Some(feed) = feeds.get(user_id) {
            mark(feed);
            return Arc::clone(feed);
        }
        // A user whose polls fail shows the fallback at once instead of waiting for a poll.
        let first = if lock(&self.inner.backoffs).contains_key(user_id) {
            Snapshot::Idle
        } else {
            Snapshot::Pending
        };
        let (snapshot, _) = watch::channel(first);
        let feed = Arc::new(Feed {
            user_id: user_id.to_owned(),
            last_seen: Mutex::new(Instant::now()),
            sockets: AtomicUsize::new(0),
            snapshot,
            wake: Notify::new(),
        });
        mark(&feed);
        feeds.insert(user_id.to_owned(), Arc::clone(&feed));
        tokio::spawn(run_feed(Arc::clone(&self.inner), Arc::clone(&feed)));
        feed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spotify::CurrentlyPlayingType;

    fn playing(progress_ms: Option<u64>, duration_ms: Option<u64>, ago: Duration) -> PlayingItem {
        PlayingItem {
            item: CurrentlyPlaying {
                currently_playing_type: CurrentlyPlayingType::Track,
                is_playing: true,
                progress_ms,
                id: None,
                uri: Some("spotify:local:A:B:C:10".into()),
                name: Some("C".into()),
                artists: vec!["A".into()],
                album: Some("B".into()),
                duration_ms,
                image_url: None,
            },
            cover: None,
            observed_at: Instant::now().checked_sub(ago).unwrap(),
        }
    }

    #[test]
    fn progress_is_extrapolated_up_to_a_known_duration_only() {
        let ten_seconds = Duration::from_secs(10);
        let near_the_end = playing(Some(5_000), Some(8_000), ten_seconds);
        assert_eq!(near_the_end.progress_ms(), Some(8_000));
        let unknown_length = playing(Some(5_000), None, ten_seconds);
        assert!(unknown_length.progress_ms().unwrap() >= 15_000);
        assert_eq!(playing(None, Some(8_000), ten_seconds).progress_ms(), None);
        let mut paused = playing(Some(5_000), Some(8_000), ten_seconds);
        paused.item.is_playing = false;
        assert_eq!(paused.progress_ms(), Some(5_000));
        // A reported position beyond the duration is shown at the end.
        assert_eq!(
            playing(Some(9_000), Some(8_000), Duration::ZERO).progress_ms(),
            Some(8_000)
        );
    }

    #[test]
    fn a_change_is_any_change_of_what_is_shown_but_the_position() {
        let shown = |item: PlayingItem| Snapshot::Playing(Box::new(item));
        let base = playing(Some(1_000), Some(10_000), Duration::ZERO);
        let moved = playing(Some(4_000), Some(10_000), Duration::from_secs(3));
        assert!(shown(base.clone()).shows_same(&shown(moved)));
        let changes: [fn(&mut CurrentlyPlaying); 8] = [
            |item| item.name = Some("Other".into()),
            |item| item.uri = Some("spotify:local:A:B:D:10".into()),
            |item| item.id = Some("x".into()),
            |item| item.artists.push("Feat".into()),
            |item| item.album = None,
            |item| item.duration_ms = None,
            |item| item.is_playing = false,
            |item| item.image_url = Some("https://i.scdn.co/x".into()),
        ];
        for change in changes {
            let mut other = base.clone();
            change(&mut other.item);
            assert!(
                !shown(base.clone()).shows_same(&shown(other.clone())),
                "{other:?}"
            );
        }
        assert!(Snapshot::Idle.shows_same(&Snapshot::Idle));
        assert!(!Snapshot::Idle.shows_same(&Snapshot::Disconnected));
        assert!(!Snapshot::Idle.shows_same(&shown(base)));
    }
}
