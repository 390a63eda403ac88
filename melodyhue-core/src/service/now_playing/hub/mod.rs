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
//! - Several nodes ([`NowPlayingHub::coordinate`]): before each poll the feed asks the
//!   [`PollCoordinator`] whether this node polls the user; if another does, the feed shows what
//!   that node shares ([`NowPlayingHub::apply_remote`]), and subscribers are woken exactly as
//!   by a poll of this node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use tokio::sync::{Notify, watch};

use super::coordination::{Claim, PollCoordinator, PollLease};
use crate::spotify::{
    AppCredentials, ImagePolicy, ItemKind, NowPlaying, Playback, SpotifyClient, SpotifyError,
};
use crate::color::{self, ColorReport};
use crate::secrets::SecretBox;
use crate::store::Store;

/// How long a `/color` or `/infos` request keeps a user watched.
pub const WATCH_WINDOW: Duration = Duration::from_secs(30);
/// The longest a viewer waits for Spotify: the first poll of a user, if it takes longer, is
/// answered with the fallback and finishes in the background.
pub const VIEWER_WAIT: Duration = Duration::from_secs(1);
/// Longest wait between two polls after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often the hub re-reads a user's credentials from the database (they may change on
/// another server, or the user may be deleted).
const CREDENTIALS_TTL: Duration = Duration::from_secs(60);
/// Covers kept in memory.
const COVER_CACHE_ENTRIES: u64 = 10_000;
/// How long a cover's colors are kept.
const COVER_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a failed cover is remembered before it is tried again.
const COVER_FAILURE_TTL: Duration = Duration::from_secs(60);
/// Access tokens are renewed this long before Spotify says they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// Token refreshes one poll may make while its refresh tokens turn out stale.
const MAX_REFRESH_ATTEMPTS: usize = 3;
/// How long a refused refresh token is kept before it is cleared: another server may have
/// just used it and be storing its successor.
const REFUSAL_GRACE: Duration = Duration::from_secs(2);

/// What is shown for a track or episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayingItem {
    /// What Spotify reported.
    pub item: NowPlaying,
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
        let without_progress = |item: &NowPlaying| NowPlaying {
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
}

#[derive(Default)]
struct Counters {
    cover_lookups: std::sync::atomic::AtomicU64,
    cover_misses: std::sync::atomic::AtomicU64,
}

type CoverOutcome = Result<Arc<ColorReport>, Arc<str>>;

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

#[derive(Clone)]
struct AccessToken {
    token: String,
    expires_at: Instant,
}

/// A refresh token as the database holds it.
#[derive(Clone)]
struct StoredToken {
    plain: String,
    /// The encrypted value: what a compare-and-set expects.
    encrypted: String,
}

/// The hub's single copy of a user's Spotify connection. Every change of a token goes here
/// at once, so no poll ever uses an older copy.
#[derive(Clone)]
struct Connection {
    app: AppCredentials,
    /// The refresh token the database holds.
    stored: StoredToken,
    /// A newer refresh token from Spotify that could not be stored yet (the database was
    /// unavailable): it is used, and stored again at the next check.
    unsaved: Option<String>,
    /// When the database was last read; `None` makes the next use read it.
    checked_at: Option<Instant>,
    access: Option<AccessToken>,
}

impl Connection {
    /// The newest refresh token.
    fn refresh_token(&self) -> &str {
        self.unsaved.as_deref().unwrap_or(&self.stored.plain)
    }

    fn is_fresh(&self) -> bool {
        self.checked_at
            .is_some_and(|checked| checked.elapsed() < CREDENTIALS_TTL)
    }

    fn valid_access_token(&self) -> Option<&str> {
        self.access
            .as_ref()
            .filter(|access| access.expires_at > Instant::now())
            .map(|access| access.token.as_str())
    }
}

/// A user's connection, and how many times their credentials changed: a poll that read the
/// connection before a change must not write back a copy that hides it.
#[derive(Default)]
struct ConnectionSlot {
    generation: u64,
    connection: Option<Connection>,
}

/// A user whose polls fail: not polled before `retry_at`.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    /// Failures in a row (a `429` does not count: its wait is Spotify's).
    failures: u32,
    retry_at: Instant,
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
                backoffs: Mutex::new(HashMap::new()),
                covers: Cache::builder()
                    .max_capacity(COVER_CACHE_ENTRIES)
                    .expire_after(CoverExpiry)
                    .build(),
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
        {
            let mut connections = lock(&self.inner.connections);
            let slot = connections.entry(user_id.to_owned()).or_default();
            slot.generation += 1;
            if let Some(connection) = &mut slot.connection {
                connection.checked_at = None;
            }
        }
        lock(&self.inner.backoffs).remove(user_id);
        if let Some(feed) = lock(&self.inner.feeds).get(user_id) {
            feed.wake.notify_one();
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

/// Why a poll did not produce a snapshot from Spotify.
#[derive(Debug)]
enum PollFailure {
    /// No usable credentials: show as disconnected until they change.
    Disconnected,
    /// The user no longer exists.
    Gone,
    /// Wait this long (a `Retry-After`).
    RateLimited(Duration),
    /// Try again later, backing off.
    Transient,
}

/// The feed task of one user: polls while watched (or follows the node that polls them),
/// then removes itself.
async fn run_feed(hub: Arc<HubInner>, feed: Arc<Feed>) {
    // The lease this node polls under, and when it last polled.
    let mut lease: Option<(PollLease, Instant)> = None;
    loop {
        let retry_at = lock(&hub.backoffs)
            .get(&feed.user_id)
            .map(|backoff| backoff.retry_at);
        let delay = match retry_at.filter(|at| *at > Instant::now()) {
            Some(at) => {
                publish(&feed, Snapshot::Idle);
                at - Instant::now()
            }
            None => match claim(&hub, &feed.user_id).await {
                Claim::Follow { latest, retry_in } => {
                    lease = None;
                    if let Some(latest) = latest {
                        publish(&feed, latest);
                    }
                    retry_in
                }
                Claim::Poll(granted) => {
                    lease = granted.map(|granted| (granted, Instant::now()));
                    let granted = lease.map(|(granted, _)| granted);
                    let outcome = poll(&hub, &feed).await;
                    let Some(delay) = settle(&hub, &feed, granted, outcome).await else {
                        break;
                    };
                    delay
                }
            },
        };
        // Sleep until the next poll, waking early on a credentials change, and at least once
        // per interval to notice that nobody watches any more.
        let deadline = tokio::time::Instant::now() + delay;
        let mut woken = false;
        while !woken && tokio::time::Instant::now() < deadline {
            let nap = (deadline - tokio::time::Instant::now())
                .min(hub.interval.max(Duration::from_secs(1)));
            tokio::select! {
                () = tokio::time::sleep(nap) => {}
                () = feed.wake.notified() => woken = true,
            }
            if !feed.is_watched() {
                break;
            }
        }
        if stop_if_unwatched(&hub, &feed) {
            release(&hub, &feed.user_id, lease).await;
            return;
        }
    }
    remove(&hub, &feed);
    release(&hub, &feed.user_id, lease).await;
}

/// Asks the coordinator, if any, whether this node polls `user_id` now.
async fn claim(hub: &HubInner, user_id: &str) -> Claim {
    match hub.coordinator.get() {
        Some(coordinator) => coordinator.claim(user_id).await,
        None => Claim::Poll(None),
    }
}

/// Hands the user's polling over once nobody watches here.
async fn release(hub: &HubInner, user_id: &str, lease: Option<(PollLease, Instant)>) {
    if let (Some(coordinator), Some((lease, polled_at))) = (hub.coordinator.get(), lease) {
        let due_in = hub.interval.saturating_sub(polled_at.elapsed());
        coordinator.release(user_id, lease, due_in).await;
    }
}

/// Shows (and shares, under `lease`) what a poll found; the wait before the next one, or
/// `None` when the user is gone.
async fn settle(
    hub: &HubInner,
    feed: &Feed,
    lease: Option<PollLease>,
    outcome: Result<Snapshot, PollFailure>,
) -> Option<Duration> {
    let (snapshot, delay) = match outcome {
        Ok(snapshot) => {
            lock(&hub.backoffs).remove(&feed.user_id);
            (snapshot, hub.interval)
        }
        Err(PollFailure::Gone) => {
            lock(&hub.connections).remove(&feed.user_id);
            lock(&hub.backoffs).remove(&feed.user_id);
            return None;
        }
        Err(PollFailure::Disconnected) => {
            lock(&hub.backoffs).remove(&feed.user_id);
            if let Some(coordinator) = hub.coordinator.get() {
                coordinator.disconnected(&feed.user_id);
            }
            (
                Snapshot::Disconnected,
                hub.interval.max(Duration::from_secs(30)),
            )
        }
        Err(PollFailure::RateLimited(retry_after)) => {
            let wait = retry_after.max(hub.interval);
            back_off(hub, &feed.user_id, |failures| (failures, wait));
            if let (Some(coordinator), Some(lease)) = (hub.coordinator.get(), lease) {
                coordinator.hold(&feed.user_id, lease, wait).await;
            }
            (Snapshot::Idle, wait)
        }
        Err(PollFailure::Transient) => {
            let wait = back_off(hub, &feed.user_id, |failures| {
                let failures = failures.saturating_add(1);
                (failures, backoff(hub.interval, failures))
            });
            (Snapshot::Idle, wait)
        }
    };
    match (hub.coordinator.get(), lease) {
        (Some(coordinator), Some(lease)) => {
            let changed = publish(feed, snapshot.clone());
            coordinator
                .share(&feed.user_id, lease, &snapshot, changed)
                .await;
        }
        _ => {
            publish(feed, snapshot);
        }
    }
    Some(delay)
}

/// Records a failure of the user's polls: `next` turns the failures so far into the new count
/// and the wait before the next poll, which is returned.
fn back_off(hub: &HubInner, user_id: &str, next: impl FnOnce(u32) -> (u32, Duration)) -> Duration {
    let mut backoffs = lock(&hub.backoffs);
    let failures = backoffs.get(user_id).map_or(0, |backoff| backoff.failures);
    let (failures, wait) = next(failures);
    backoffs.insert(
        user_id.to_owned(),
        Backoff {
            failures,
            retry_at: Instant::now() + wait,
        },
    );
    wait
}

/// Removes the feed when nobody watches it, deciding under the feed map's lock (see
/// [`NowPlayingHub::feed`]). Whether it stopped.
fn stop_if_unwatched(hub: &HubInner, feed: &Arc<Feed>) -> bool {
    let mut feeds = lock(&hub.feeds);
    if feed.is_watched() {
        return false;
    }
    if feeds
        .get(&feed.user_id)
        .is_some_and(|f| Arc::ptr_eq(f, feed))
    {
        feeds.remove(&feed.user_id);
    }
    true
}

fn remove(hub: &HubInner, feed: &Arc<Feed>) {
    let mut feeds = lock(&hub.feeds);
    if feeds
        .get(&feed.user_id)
        .is_some_and(|f| Arc::ptr_eq(f, feed))
    {
        feeds.remove(&feed.user_id);
    }
}

fn backoff(interval: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.min(16));
    interval.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Stores the new snapshot, waking subscribers only when what they show changed (returned).
fn publish(feed: &Feed, next: Snapshot) -> bool {
    feed.snapshot.send_if_modified(|current| {
        let changed = !current.shows_same(&next);
        *current = next;
        changed
    })
}

/// The user's connection as the hub knows it, with the generation it was read at.
fn connection_of(hub: &HubInner, user_id: &str) -> (u64, Option<Connection>) {
    let connections = lock(&hub.connections);
    connections
        .get(user_id)
        .map_or((0, None), |slot| (slot.generation, slot.connection.clone()))
}

/// Puts back the connection a poll worked with. When the credentials changed meanwhile, the
/// copy is marked for a fresh read, so the change is seen before the next call.
fn keep_connection(hub: &HubInner, user_id: &str, generation: u64, mut connection: Connection) {
    let mut connections = lock(&hub.connections);
    let slot = connections.entry(user_id.to_owned()).or_default();
    if slot.generation != generation {
        connection.checked_at = None;
    }
    slot.connection = Some(connection);
}

fn forget_connection(hub: &HubInner, user_id: &str) {
    if let Some(slot) = lock(&hub.connections).get_mut(user_id) {
        slot.connection = None;
    }
}

/// Reads the user's credentials from the store and merges them with the hub's copy: while the
/// database still holds the token the copy was built on, the copy (its access token, a newer
/// token not yet stored) stays, and the unstored token is stored now; a different token in the
/// database is newer and replaces the copy.
async fn load_connection(
    hub: &HubInner,
    user_id: &str,
    cached: Option<Connection>,
) -> Result<Connection, PollFailure> {
    if hub
        .store
        .user_by_id(user_id)
        .await
        .map_err(|_| PollFailure::Transient)?
        .is_none()
    {
        return Err(PollFailure::Gone);
    }
    let stored = hub
        .store
        .spotify_credentials(user_id)
        .await
        .map_err(|_| PollFailure::Transient)?;
    let (Some(client_id), Some(secret), Some(refresh)) = (
        stored.client_id,
        stored.client_secret_encrypted,
        stored.refresh_token_encrypted,
    ) else {
        return Err(PollFailure::Disconnected);
    };
    let decrypt = |value: &str| {
        hub.secrets.decrypt(value).map_err(|_| {
            tracing::warn!(%user_id, "stored Spotify secret does not decrypt with ENCRYPTION_KEY");
            PollFailure::Disconnected
        })
    };
    let app = AppCredentials {
        client_id,
        client_secret: decrypt(&secret)?,
    };
    let mut connection = match cached.filter(|c| c.stored.encrypted == refresh) {
        Some(cached) => Connection { app, ..cached },
        None => Connection {
            app,
            stored: StoredToken {
                plain: decrypt(&refresh)?,
                encrypted: refresh,
            },
            unsaved: None,
            checked_at: None,
            access: None,
        },
    };
    if connection.unsaved.is_some() && !store_unsaved(hub, user_id, &mut connection).await {
        // Someone stored another token since: it is newer than ours.
        return Box::pin(load_connection(hub, user_id, None)).await;
    }
    connection.checked_at = Some(Instant::now());
    Ok(connection)
}

/// Stores the connection's unsaved refresh token in place of the stored one, by
/// compare-and-set. `false` when the database holds another token; a database that cannot be
/// reached keeps the token unsaved (`true`).
async fn store_unsaved(hub: &HubInner, user_id: &str, connection: &mut Connection) -> bool {
    let Some(newer) = connection.unsaved.clone() else {
        return true;
    };
    let encrypted = hub.secrets.encrypt(&newer);
    match hub
        .store
        .replace_spotify_refresh_token(
            user_id,
            &connection.stored.encrypted,
            Some(&encrypted),
            chrono::Utc::now(),
        )
        .await
    {
        Ok(true) => {
            connection.stored = StoredToken {
                plain: newer,
                encrypted,
            };
            connection.unsaved = None;
            true
        }
        Ok(false) => false,
        Err(err) => {
            tracing::warn!(%user_id, error = %err, "could not store Spotify's new refresh token; kept in memory and retried");
            true
        }
    }
}

/// A valid access token for the user: the hub's, or a new one (always a new one when `renew`).
async fn access_token(hub: &HubInner, user_id: &str, renew: bool) -> Result<String, PollFailure> {
    let (generation, cached) = connection_of(hub, user_id);
    let mut connection = match cached {
        Some(connection) if connection.is_fresh() => connection,
        cached => match (load_connection(hub, user_id, cached.clone()).await, cached) {
            (Ok(connection), _) => connection,
            // The database is unreachable: what the hub knows still works with Spotify (and
            // the database is read again at the next poll).
            (Err(PollFailure::Transient), Some(cached)) => cached,
            (Err(failure), _) => {
                if matches!(failure, PollFailure::Disconnected | PollFailure::Gone) {
                    forget_connection(hub, user_id);
                }
                return Err(failure);
            }
        },
    };
    if renew {
        connection.access = None;
    }
    let outcome = match connection.valid_access_token() {
        Some(token) => Ok(token.to_owned()),
        None => refresh(hub, user_id, &mut connection).await,
    };
    if matches!(outcome, Err(PollFailure::Disconnected)) {
        // Refused app or cleared token: what the database holds decides, next time.
        connection.checked_at = None;
    }
    keep_connection(hub, user_id, generation, connection);
    outcome
}

/// Gets a new access token with the newest refresh token. A rotated refresh token replaces
/// the hub's copy at once and the stored one by compare-and-set; a refused one is dropped, and
/// cleared from the store only while it is the stored one. The refresh is tried again (a few
/// times) with whatever token is newer.
async fn refresh(
    hub: &HubInner,
    user_id: &str,
    connection: &mut Connection,
) -> Result<String, PollFailure> {
    for _ in 0..MAX_REFRESH_ATTEMPTS {
        let grant = match hub
            .client
            .refresh(&connection.app, connection.refresh_token())
            .await
        {
            Ok(grant) => grant,
            Err(SpotifyError::InvalidGrant) => {
                if connection.unsaved.take().is_some() {
                    // The unstored token failed; the stored one is another credential.
                    continue;
                }
                tokio::time::sleep(REFUSAL_GRACE).await;
                match hub
                    .store
                    .replace_spotify_refresh_token(
                        user_id,
                        &connection.stored.encrypted,
                        None,
                        chrono::Utc::now(),
                    )
                    .await
                {
                    Ok(true) => {
                        tracing::info!(%user_id, "Spotify refresh token refused (invalid_grant); disconnecting");
                        return Err(PollFailure::Disconnected);
                    }
                    // A newer token was stored meanwhile: try that one.
                    Ok(false) => *connection = load_connection(hub, user_id, None).await?,
                    Err(err) => {
                        tracing::warn!(%user_id, error = %err, "could not forget the refused refresh token");
                        return Err(PollFailure::Transient);
                    }
                }
                continue;
            }
            Err(other) => return Err(classify(other)),
        };
        if let Some(rotated) = grant
            .refresh_token
            .filter(|t| t != connection.refresh_token())
        {
            connection.unsaved = Some(rotated);
            if !store_unsaved(hub, user_id, connection).await {
                // The database holds a token stored after ours was read (a new connection):
                // it wins, and the grant of ours is not used.
                *connection = load_connection(hub, user_id, None).await?;
                continue;
            }
        }
        let lifetime = grant
            .expires_in
            .saturating_sub(TOKEN_MARGIN)
            .max(Duration::from_secs(1));
        connection.access = Some(AccessToken {
            token: grant.access_token.clone(),
            expires_at: Instant::now() + lifetime,
        });
        return Ok(grant.access_token);
    }
    Err(PollFailure::Transient)
}

fn classify(err: SpotifyError) -> PollFailure {
    match err {
        SpotifyError::RateLimited { retry_after } => PollFailure::RateLimited(retry_after),
        SpotifyError::InvalidClient => PollFailure::Disconnected,
        other => {
            tracing::debug!(error = %other, "Spotify poll failed");
            PollFailure::Transient
        }
    }
}

/// One poll: credentials, token, currently-playing, cover.
async fn poll(hub: &HubInner, feed: &Feed) -> Result<Snapshot, PollFailure> {
    let mut token = access_token(hub, &feed.user_id, false).await?;
    let playback = match hub.client.currently_playing(&token).await {
        // The access token died early: renew it once.
        Err(SpotifyError::Unauthorized) => {
            token = access_token(hub, &feed.user_id, true).await?;
            hub.client.currently_playing(&token).await
        }
        other => other,
    }
    .map_err(classify)?;
    let item = match playback {
        Playback::Item(item) if matches!(item.kind, ItemKind::Track | ItemKind::Episode) => item,
        // Ads, unknown items and silence all show the fallback color.
        Playback::Item(_) | Playback::Nothing => return Ok(Snapshot::Idle),
    };
    let cover = match &item.image_url {
        Some(url) => cover(hub, url).await,
        None => None,
    };
    Ok(Snapshot::Playing(Box::new(PlayingItem {
        item,
        cover,
        observed_at: Instant::now(),
    })))
}

/// The colors of a cover, from the shared cache or by downloading and analysing it once.
async fn cover(hub: &HubInner, url: &str) -> Option<Arc<ColorReport>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn playing(progress_ms: Option<u64>, duration_ms: Option<u64>, ago: Duration) -> PlayingItem {
        PlayingItem {
            item: NowPlaying {
                kind: ItemKind::Track,
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
        let changes: [fn(&mut NowPlaying); 8] = [
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
