//! The feed task of one watched user: when to poll, one poll, and what its outcome shows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connection::{access_token, read_again};
use super::covers::cover;
use super::{Feed, HubInner, PlayingItem, Snapshot, lock, publish};
use crate::service::now_playing::coordination::{Claim, PollLease};
use crate::spotify::{CurrentlyPlayingType, Playback, SpotifyError};

/// Longest wait between two polls after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How long a poll keeps its lease by renewing it: far beyond any poll whose calls all end
/// in time (each call to Spotify is bounded by `SPOTIFY_TIMEOUT`, 5 s; a poll makes a few), so
/// only a poll stuck on something without a bound of its own (a database that stopped
/// answering mid-query) lets its lease go, and another node poll the user.
const LONGEST_HELD_POLL: Duration = Duration::from_secs(60);
/// The wait before a connection found unusable (no credentials, a refused app or refresh
/// token) is tried again, unless the user changes it first.
const REFUSED_PAUSE: Duration = Duration::from_secs(30);

/// A user whose polls fail: not polled before `retry_at`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Backoff {
    /// Failures in a row (a `429` does not count: its wait is Spotify's).
    failures: u32,
    retry_at: Instant,
}

/// Why a poll did not produce a snapshot from Spotify.
#[derive(Debug)]
pub(super) enum PollFailure {
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
pub(super) async fn run_feed(hub: Arc<HubInner>, feed: Arc<Feed>) {
    // The lease this node polls under, and when it last polled.
    let mut lease: Option<(PollLease, Instant)> = None;
    // The fencing token of the last lease this node claimed to poll under (kept while it
    // follows). A renewal during a poll that took a lapsed lease again brings a new fence: the
    // next poll reads the connection again, as after any gap in the lease.
    let mut fence_held: Option<u64> = None;
    // Woken early (a credentials change): the next poll claims, which also finds a hold (a
    // `429`) that the lease alone would not show.
    let mut woken = false;
    loop {
        let retry_at = lock(&hub.backoffs)
            .get(&feed.user_id)
            .map(|backoff| backoff.retry_at);
        let delay = match retry_at.filter(|at| *at > Instant::now()) {
            Some(at) => {
                publish(&feed, Snapshot::Idle);
                at - Instant::now()
            }
            None => match claim(
                &hub,
                &feed.user_id,
                lease.filter(|_| !woken).map(|(held, _)| held),
            )
            .await
            {
                Claim::Follow { latest, retry_in } => {
                    lease = None;
                    if let Some(latest) = latest {
                        publish(&feed, latest);
                    }
                    retry_in
                }
                Claim::Poll(granted) => {
                    if let Some(granted) = granted {
                        if fence_held != Some(granted.fence) {
                            // Taken over: see `read_again`.
                            read_again(&hub, &feed.user_id);
                        }
                        fence_held = Some(granted.fence);
                    }
                    let polled_at = Instant::now();
                    let (outcome, mut granted) = poll_holding(&hub, &feed, granted).await;
                    let delay = settle(&hub, &feed, &mut granted, outcome).await;
                    lease = granted.map(|granted| (granted, polled_at));
                    let Some(delay) = delay else {
                        break;
                    };
                    delay
                }
            },
        };
        // Sleep until the next poll, waking early on a credentials change, and at least once
        // per interval to notice that nobody watches any more.
        let deadline = tokio::time::Instant::now() + delay;
        woken = false;
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

/// Whether this node polls `user_id` now: without a coordinator, always; under a lease `held`
/// (renewed by the last poll's share) not yet due for renewal ([`renew_at`]), without asking;
/// otherwise the coordinator says.
async fn claim(hub: &HubInner, user_id: &str, held: Option<PollLease>) -> Claim {
    let Some(coordinator) = hub.coordinator.get() else {
        return Claim::Poll(None);
    };
    match held {
        Some(held) if Instant::now() < renew_at(held, hub.interval) => Claim::Poll(Some(held)),
        _ => coordinator.claim(user_id).await,
    }
}

/// When a holder renews `lease` by claiming: a quarter interval before it ends, so a poll
/// answered late keeps its lease and one answered in time needs no renewal.
fn renew_at(lease: PollLease, interval: Duration) -> Instant {
    lease
        .holds_until
        .checked_sub(interval / 4)
        .unwrap_or(lease.holds_until)
}

/// One poll under `lease` (if any), which is renewed by claiming again each time [`renew_at`]
/// comes while the poll runs, up to [`LONGEST_HELD_POLL`]: a poll that outlasts its lease (a
/// refused refresh token waits two seconds before it is cleared; Spotify may answer late)
/// would let another node poll the user meanwhile, with the same connection, and find the
/// lease gone when it shares what it found, or holds the user (a refusal's pause) for every
/// node. What the poll found, and the lease to share it under (the last one a claim gave).
async fn poll_holding(
    hub: &HubInner,
    feed: &Feed,
    mut lease: Option<PollLease>,
) -> (Result<Snapshot, PollFailure>, Option<PollLease>) {
    // On the heap, and only one: a feed sleeps between polls nearly all its life, and the
    // kilobytes of a poll's future (the Spotify request, the cover) would otherwise be part of
    // every feed task's size, once per await that holds one.
    let mut polling = Box::pin(poll(hub, feed));
    let Some(coordinator) = hub.coordinator.get() else {
        return (polling.await, lease);
    };
    let give_up_at = Instant::now() + LONGEST_HELD_POLL;
    while let Some(held) = lease {
        let due = renew_at(held, hub.interval);
        if due > give_up_at {
            break;
        }
        tokio::select! {
            biased;
            outcome = &mut polling => return (outcome, lease),
            () = tokio::time::sleep_until(due.into()) => {}
        }
        // The poll goes on while the claim is asked, and the claim's answer is awaited even
        // when the poll ends first: a lapsed lease taken again has a new fence, under which
        // alone the share (or a hold) is accepted.
        let mut renewal = coordinator.claim(&feed.user_id);
        let mut outcome = None;
        let claim = loop {
            tokio::select! {
                biased;
                claim = &mut renewal => break claim,
                polled = &mut polling, if outcome.is_none() => outcome = Some(polled),
            }
        };
        match (claim, outcome) {
            (Claim::Poll(Some(renewed)), None) => lease = Some(renewed),
            (Claim::Poll(Some(renewed)), Some(outcome)) => return (outcome, Some(renewed)),
            // Lost (another node holds it now: the share is refused, and the next poll
            // claims), or out of reach: renewing again cannot help.
            (_, Some(outcome)) => return (outcome, lease),
            (_, None) => break,
        }
    }
    (polling.await, lease)
}

/// Hands the user's polling over once nobody watches here.
async fn release(hub: &HubInner, user_id: &str, lease: Option<(PollLease, Instant)>) {
    if let (Some(coordinator), Some((lease, polled_at))) = (hub.coordinator.get(), lease) {
        let due_in = hub.interval.saturating_sub(polled_at.elapsed());
        coordinator.release(user_id, lease, due_in).await;
    }
}

/// Shows (and shares, under `lease`, which the share renews or ends) what a poll found; the
/// wait before the next one, or `None` when the user is gone.
async fn settle(
    hub: &HubInner,
    feed: &Feed,
    lease: &mut Option<PollLease>,
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
            let wait = hub.interval.max(REFUSED_PAUSE);
            if let Some(coordinator) = hub.coordinator.get() {
                // Held before the others hear of it: woken by the news, they find the hold.
                if let Some(lease) = *lease {
                    coordinator.hold(&feed.user_id, lease, wait).await;
                }
                coordinator.disconnected(&feed.user_id);
            }
            (Snapshot::Disconnected, wait)
        }
        Err(PollFailure::RateLimited(retry_after)) => {
            let wait = retry_after.max(hub.interval);
            back_off(hub, &feed.user_id, |failures| (failures, wait));
            if let (Some(coordinator), Some(lease)) = (hub.coordinator.get(), *lease) {
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
    match (hub.coordinator.get(), *lease) {
        (Some(coordinator), Some(held)) => {
            let changed = publish(feed, snapshot.clone());
            *lease = coordinator
                .share(&feed.user_id, held, &snapshot, changed)
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

pub(super) fn classify(err: SpotifyError) -> PollFailure {
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
        Playback::Item(item)
            if matches!(
                item.currently_playing_type,
                CurrentlyPlayingType::Track | CurrentlyPlayingType::Episode
            ) =>
        {
            item
        }
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
