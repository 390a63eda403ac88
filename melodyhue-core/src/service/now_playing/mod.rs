//! What `/color`, `/infos` and `/ws` show for a user: the playing track and its cover's colors,
//! or the user's fallback color ([`NowPlaying`], answered by [`Playing::of`]; `Playing` is
//! [`App::now_playing`]).
//!
//! Behind it, the [`hub`] polls Spotify for the users someone watches and keeps the latest state
//! of each in memory; [`coordination`] is how the hubs of several nodes share that polling
//! ([`crate::cluster`] implements it over Redis).

use std::sync::Arc;
use std::time::Instant;

pub mod coordination;
pub mod hub;

use self::hub::{HubStats, PlayingItem, Snapshot, Subscription};
use super::{Error, Result, Stale};
use crate::App;
use crate::api::events::StreamCounts;
use crate::api::ws::SocketCounts;
use crate::color::{self, Palette, Rgb};
use crate::store::StoreError;

/// A track (or episode) as overlays show it. What Spotify did not say is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// Spotify id (`None` for a local file).
    pub id: Option<String>,
    /// Spotify URI (`spotify:local:…` for a local file); not shown, but tells items apart.
    pub uri: Option<String>,
    /// Title.
    pub name: Option<String>,
    /// Artist names joined by ", " (the show's publisher for episodes); `None` without any.
    pub artist: Option<String>,
    /// Album (the show for episodes).
    pub album: Option<String>,
    /// Length.
    pub duration_ms: Option<u64>,
    /// Position, extrapolated while playing, never beyond `duration_ms`.
    pub progress_ms: Option<u64>,
    /// Whether it plays (false when paused).
    pub is_playing: bool,
    /// Cover image.
    pub image_url: Option<String>,
}

impl Track {
    /// Whether `other` shows the same, the position aside (it moves all the time).
    pub fn shows_same(&self, other: &Track) -> bool {
        let without_progress = |track: &Track| Track {
            progress_ms: None,
            ..track.clone()
        };
        without_progress(self) == without_progress(other)
    }
}

impl From<&PlayingItem> for Track {
    fn from(playing: &PlayingItem) -> Self {
        let item = &playing.item;
        Track {
            id: item.id.clone(),
            uri: item.uri.clone(),
            name: item.name.clone(),
            artist: (!item.artists.is_empty()).then(|| item.artists.join(", ")),
            album: item.album.clone(),
            duration_ms: item.duration_ms,
            progress_ms: playing.progress_ms(),
            is_playing: item.is_playing,
            image_url: item.image_url.clone(),
        }
    }
}

/// What a user's overlay shows now.
#[derive(Debug, Clone, PartialEq)]
pub struct NowPlaying {
    /// The cover's classic color while playing, else the user's fallback color.
    pub color: Rgb,
    /// The cover's swatches while playing.
    pub palette: Option<Palette>,
    /// A readable text color on `color` (WCAG contrast of at least 4.5:1).
    pub text_color: Rgb,
    /// The loaded track, playing or paused.
    pub track: Option<Track>,
    /// How long the answer took, in milliseconds.
    pub processing_time_ms: f64,
    /// Set when `color` is a copy of the fallback color kept from before the database became
    /// unavailable (stale-if-error).
    pub stale: Option<Stale>,
}

impl NowPlaying {
    /// Whether `other` shows the same: colors, and the track apart from its position.
    pub fn shows_same(&self, other: &NowPlaying) -> bool {
        let tracks_same = match (&self.track, &other.track) {
            (Some(a), Some(b)) => a.shows_same(b),
            (a, b) => a.is_none() && b.is_none(),
        };
        self.color == other.color
            && self.palette == other.palette
            && self.text_color == other.text_color
            && tracks_same
    }
}

/// Now playing: each user's current track and colors, and subscriptions to their changes.
///
/// A view of an [`App`], from [`App::now_playing`].
#[derive(Debug, Clone, Copy)]
pub struct Playing<'a> {
    pub(crate) app: &'a App,
}

impl<'a> Playing<'a> {
    /// The now-playing state of `user_id`, watching them (see [`hub`]); `User not found` for an
    /// unknown user. While a cover is playing the answer comes from memory; otherwise the
    /// fallback color comes from a copy at most one polling interval old (10 to 15 minutes on a
    /// subscribed cluster node; see [`HotReads`](super::HotReads)), dropped when the user's
    /// settings change. While the database is unavailable, the last fallback color read is
    /// shown instead, marked [`NowPlaying::stale`], for up to
    /// [`STALE_IF_ERROR`](super::STALE_IF_ERROR).
    pub async fn of(self, user_id: &str) -> Result<NowPlaying> {
        let started = Instant::now();
        let inner = self.app.inner();
        // A user already watched exists; anyone else is looked up before being watched.
        let mut fallback = None;
        if inner.hub.peek(user_id).is_none() {
            fallback = Some(self.fallback_color(user_id).await?);
        }
        let snapshot = inner.hub.watch(user_id).await;
        let playing = match &snapshot {
            Snapshot::Playing(playing) => Some(&**playing),
            _ => None,
        };
        let track = playing.map(Track::from);
        let (color, palette, text_color, stale) = match playing.and_then(PlayingItem::playing_color)
        {
            Some(report) => (report.color, Some(report.palette), report.text_color, None),
            None => {
                let (color, stale) = match fallback {
                    Some(fallback) => fallback,
                    None => self.fallback_color(user_id).await?,
                };
                (color, None, color::black_or_white_on(color), stale)
            }
        };
        Ok(NowPlaying {
            color,
            palette,
            text_color,
            track,
            processing_time_ms: started.elapsed().as_secs_f64() * 1000.0,
            stale,
        })
    }

    /// Follows `user_id`'s now-playing state, keeping them watched while the subscription
    /// lives: its `updates` change with every new snapshot (read the state with
    /// [`Playing::of`]). When the feed stops (the user is gone), `updates` ends; a new
    /// subscription restarts it.
    pub fn subscribe(self, user_id: &str) -> Subscription {
        self.app.inner().hub.subscribe(user_id)
    }

    /// How many users are watched and polled, and what the hub holds for them.
    pub fn stats(self) -> HubStats {
        self.app.inner().hub.stats()
    }

    /// Open `/ws` sockets per user.
    pub(crate) fn sockets(self) -> &'a Arc<SocketCounts> {
        &self.app.inner().ws_sockets
    }

    /// Open `/infos/{user_id}/events` streams.
    pub(crate) fn event_streams(self) -> &'a Arc<StreamCounts> {
        &self.app.inner().event_streams
    }

    /// The user's fallback color: fresh, or a stale copy while the database is unavailable.
    async fn fallback_color(self, user_id: &str) -> Result<(Rgb, Option<Stale>)> {
        let inner = self.app.inner();
        if let Some(color) = inner.hot_reads.fallback_color(user_id) {
            return Ok((color, None));
        }
        let read = inner.hot_reads.read_started();
        let hex = match inner.store.fallback_color(user_id).await {
            Ok(hex) => hex.ok_or(Error::NotFound("User not found"))?,
            Err(err @ StoreError::Unavailable(_)) => {
                return match inner.hot_reads.stale_fallback_color(user_id) {
                    Some((color, stale)) => Ok((color, Some(stale))),
                    None => Err(err.into()),
                };
            }
            Err(err) => return Err(err.into()),
        };
        // Stored colors are validated on the way in; a legacy row with nonsense shows black.
        let color = Rgb::from_hex(&hex).unwrap_or(Rgb::new(0, 0, 0));
        inner.hot_reads.keep_fallback_color(user_id, color, read);
        Ok((color, None))
    }
}
