//! The now-playing hub: one per server, it polls Spotify for the users someone is watching and
//! keeps the latest state of each in memory for `/color`, `/infos` and `/ws`.
//!
//! - A user is *watched* while a `/color` or `/infos` request came in the last
//!   [`WATCH_WINDOW`], or a WebSocket is open. Nobody else is polled.
//! - Each watched user has one feed task: at most one currently-playing call per polling
//!   interval, however many viewers; requests only read the feed's latest snapshot, and the
//!   first requests for a user all wait for the same first poll.
//! - A `429` stops the user's polls for its whole `Retry-After` (remembered even when the feed
//!   stops and restarts); failures and timeouts back off exponentially.
//! - A dead refresh token (`invalid_grant`) is forgotten: the user shows as disconnected.
//! - Covers are downloaded and analysed once per image URL for all users, through a bounded
//!   cache; failures are remembered briefly so a broken cover is not fetched every poll.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use tokio::sync::{Notify, watch};

use super::{
    AppCredentials, ImagePolicy, ItemKind, NowPlaying, Playback, SpotifyClient, SpotifyError,
};
use crate::color::{self, ColorReport};
use crate::model::SpotifyCredentialsPatch;
use crate::secrets::SecretBox;
use crate::store::Store;

/// How long a `/color` or `/infos` request keeps a user watched.
pub const WATCH_WINDOW: Duration = Duration::from_secs(30);
/// Longest wait between two polls after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long the first request for a user waits for the first poll.
const FIRST_POLL_WAIT: Duration = Duration::from_secs(10);
/// How often a feed re-reads its credentials from the database (they may change on another
/// server, or the user may be deleted).
const CREDENTIALS_TTL: Duration = Duration::from_secs(60);
/// Covers kept in memory.
const COVER_CACHE_ENTRIES: u64 = 10_000;
/// How long a cover's colors are kept.
const COVER_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a failed cover is remembered before it is tried again.
const COVER_FAILURE_TTL: Duration = Duration::from_secs(60);
/// Access tokens are renewed this long before Spotify says they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

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
    /// The position now, extrapolated from the last poll while playing.
    pub fn progress_ms(&self) -> u64 {
        let reported = self.item.progress_ms.unwrap_or(0);
        let elapsed = if self.item.is_playing {
            u64::try_from(self.observed_at.elapsed().as_millis()).unwrap_or(u64::MAX)
        } else {
            0
        };
        let progress = reported.saturating_add(elapsed);
        self.item.duration_ms.map_or(progress, |d| progress.min(d))
    }

    /// The cover color, only while actually playing.
    pub fn playing_color(&self) -> Option<&ColorReport> {
        self.cover.as_deref().filter(|_| self.item.is_playing)
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
    Playing(PlayingItem),
}

impl Snapshot {
    /// What `/ws` listeners care about: a change of item, play state or color.
    fn signature(&self) -> (u8, Option<&str>, bool, Option<color::Rgb>) {
        match self {
            Snapshot::Pending => (0, None, false, None),
            Snapshot::Disconnected => (1, None, false, None),
            Snapshot::Idle => (2, None, false, None),
            Snapshot::Playing(p) => (
                3,
                p.item.id.as_deref(),
                p.item.is_playing,
                p.cover.as_ref().map(|c| c.color),
            ),
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

struct AccessToken {
    token: String,
    expires_at: Instant,
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
    /// Access tokens outlive feeds, so a user watched again does not cost a token call.
    tokens: Mutex<HashMap<String, AccessToken>>,
    /// `Retry-After` deadlines outlive feeds too: a restarted feed must not poll early.
    blocked_until: Mutex<HashMap<String, Instant>>,
    covers: Cache<String, CoverOutcome>,
    counters: Counters,
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
                tokens: Mutex::new(HashMap::new()),
                blocked_until: Mutex::new(HashMap::new()),
                covers: Cache::builder()
                    .max_capacity(COVER_CACHE_ENTRIES)
                    .expire_after(CoverExpiry)
                    .build(),
                counters: Counters::default(),
            }),
        }
    }

    /// Marks `user_id` watched (starting its feed if needed) and returns its latest snapshot,
    /// waiting for the first poll if there is none yet. The caller has checked that the user
    /// exists.
    pub async fn watch(&self, user_id: &str) -> Snapshot {
        let feed = self.feed(user_id, |feed| *lock(&feed.last_seen) = Instant::now());
        let mut updates = feed.snapshot.subscribe();
        let first = tokio::time::timeout(
            FIRST_POLL_WAIT,
            updates.wait_for(|s| !matches!(s, Snapshot::Pending)),
        )
        .await;
        match first {
            Ok(Ok(snapshot)) => snapshot.clone(),
            // Spotify is slower than our patience: show the fallback now.
            _ => Snapshot::Idle,
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

    /// The user's credentials changed: forget the cached token and poll again at once.
    pub fn credentials_changed(&self, user_id: &str) {
        lock(&self.inner.tokens).remove(user_id);
        lock(&self.inner.blocked_until).remove(user_id);
        if let Some(feed) = lock(&self.inner.feeds).get(user_id) {
            feed.wake.notify_one();
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
        let (snapshot, _) = watch::channel(Snapshot::Pending);
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

/// The feed task of one user: polls while watched, then removes itself.
async fn run_feed(hub: Arc<HubInner>, feed: Arc<Feed>) {
    let mut credentials: Option<(AppCredentials, String, Instant)> = None;
    let mut failures: u32 = 0;
    loop {
        let blocked = lock(&hub.blocked_until).get(&feed.user_id).copied();
        let delay = match blocked.filter(|until| *until > Instant::now()) {
            Some(until) => {
                publish(&feed, Snapshot::Idle);
                until - Instant::now()
            }
            None => match poll(&hub, &feed, &mut credentials).await {
                Ok(snapshot) => {
                    failures = 0;
                    publish(&feed, snapshot);
                    hub.interval
                }
                Err(PollFailure::Gone) => break,
                Err(PollFailure::Disconnected) => {
                    publish(&feed, Snapshot::Disconnected);
                    hub.interval.max(Duration::from_secs(30))
                }
                Err(PollFailure::RateLimited(retry_after)) => {
                    lock(&hub.blocked_until)
                        .insert(feed.user_id.clone(), Instant::now() + retry_after);
                    publish(&feed, Snapshot::Idle);
                    retry_after.max(hub.interval)
                }
                Err(PollFailure::Transient) => {
                    failures = failures.saturating_add(1);
                    publish(&feed, Snapshot::Idle);
                    backoff(hub.interval, failures)
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
                () = feed.wake.notified() => {
                    credentials = None;
                    woken = true;
                }
            }
            if !feed.is_watched() {
                break;
            }
        }
        if stop_if_unwatched(&hub, &feed) {
            return;
        }
    }
    remove(&hub, &feed);
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

fn publish(feed: &Feed, next: Snapshot) {
    feed.snapshot.send_if_modified(|current| {
        let changed = current.signature() != next.signature();
        *current = next;
        changed
    });
}

/// Loads the user's app credentials and refresh token from the store (decrypted).
async fn load_credentials(
    hub: &HubInner,
    user_id: &str,
) -> Result<(AppCredentials, String, Instant), PollFailure> {
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
    Ok((app, decrypt(&refresh)?, Instant::now()))
}

/// A valid access token for the user, refreshing it when needed.
async fn access_token(
    hub: &HubInner,
    user_id: &str,
    app: &AppCredentials,
    refresh_token: &str,
) -> Result<String, PollFailure> {
    if let Some(token) = lock(&hub.tokens)
        .get(user_id)
        .filter(|t| t.expires_at > Instant::now())
    {
        return Ok(token.token.clone());
    }
    let grant = hub
        .client
        .refresh(app, refresh_token)
        .await
        .map_err(|err| match err {
            SpotifyError::InvalidGrant => PollFailure::Disconnected,
            other => classify(other),
        });
    let grant = match grant {
        Ok(grant) => grant,
        Err(PollFailure::Disconnected) => {
            forget_refresh_token(hub, user_id).await;
            return Err(PollFailure::Disconnected);
        }
        Err(other) => return Err(other),
    };
    if let Some(rotated) = &grant.refresh_token {
        let patch = SpotifyCredentialsPatch {
            refresh_token_encrypted: Some(Some(hub.secrets.encrypt(rotated))),
            ..SpotifyCredentialsPatch::default()
        };
        if let Err(err) = hub
            .store
            .update_spotify_credentials(user_id, &patch, chrono::Utc::now())
            .await
        {
            tracing::warn!(%user_id, error = %err, "could not store Spotify's new refresh token");
        }
    }
    let lifetime = grant
        .expires_in
        .saturating_sub(TOKEN_MARGIN)
        .max(Duration::from_secs(1));
    lock(&hub.tokens).insert(
        user_id.to_owned(),
        AccessToken {
            token: grant.access_token.clone(),
            expires_at: Instant::now() + lifetime,
        },
    );
    Ok(grant.access_token)
}

/// Spotify refused the refresh token for good: forget it, the user shows as disconnected.
async fn forget_refresh_token(hub: &HubInner, user_id: &str) {
    tracing::info!(%user_id, "Spotify refresh token refused (invalid_grant); disconnecting");
    let patch = SpotifyCredentialsPatch {
        refresh_token_encrypted: Some(None),
        ..SpotifyCredentialsPatch::default()
    };
    if let Err(err) = hub
        .store
        .update_spotify_credentials(user_id, &patch, chrono::Utc::now())
        .await
    {
        tracing::warn!(%user_id, error = %err, "could not forget the refused refresh token");
    }
    lock(&hub.tokens).remove(user_id);
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
async fn poll(
    hub: &HubInner,
    feed: &Feed,
    credentials: &mut Option<(AppCredentials, String, Instant)>,
) -> Result<Snapshot, PollFailure> {
    if credentials
        .as_ref()
        .is_none_or(|(_, _, loaded)| loaded.elapsed() > CREDENTIALS_TTL)
    {
        *credentials = Some(load_credentials(hub, &feed.user_id).await?);
    }
    let Some((app, refresh_token, _)) = credentials.clone() else {
        return Err(PollFailure::Disconnected);
    };
    let mut retried = false;
    let playback = loop {
        let token = match access_token(hub, &feed.user_id, &app, &refresh_token).await {
            Ok(token) => token,
            Err(failure) => {
                if matches!(failure, PollFailure::Disconnected) {
                    *credentials = None;
                }
                return Err(failure);
            }
        };
        match hub.client.currently_playing(&token).await {
            Ok(playback) => break playback,
            // The access token died early: renew it once.
            Err(SpotifyError::Unauthorized) if !retried => {
                lock(&hub.tokens).remove(&feed.user_id);
                retried = true;
            }
            Err(err) => return Err(classify(err)),
        }
    };
    let item = match playback {
        Playback::Item(item) if matches!(item.kind, ItemKind::Track | ItemKind::Episode) => item,
        // Ads, unknown items and silence all show the fallback color.
        Playback::Item(_) | Playback::Nothing => return Ok(Snapshot::Idle),
    };
    let cover = match &item.image_url {
        Some(url) => cover(hub, url).await,
        None => None,
    };
    Ok(Snapshot::Playing(PlayingItem {
        item,
        cover,
        observed_at: Instant::now(),
    }))
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
