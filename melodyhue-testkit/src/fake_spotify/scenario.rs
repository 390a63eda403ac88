//! What the fake's player answers: the scripted [`Scenario`]s, their tracks and episodes, and
//! their Web API JSON.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// What the currently-playing endpoint answers for one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scenario {
    /// `200`, a track playing.
    Playing(FakeTrack),
    /// `200`, a track paused (`is_playing: false`).
    Paused(FakeTrack),
    /// `204 No Content`. The default.
    NothingPlaying,
    /// `200`, a podcast episode playing. Leave [`FakeEpisode::image_url`] empty for an
    /// episode that only has its show's image.
    Episode(FakeEpisode),
    /// `200`, an ad: `currently_playing_type: "ad"`, `item: null`.
    Ad,
    /// `200`, `currently_playing_type: "unknown"`, `item: null`.
    UnknownType,
    /// `429` with `Retry-After: retry_after_secs`.
    RateLimited {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// `429` with this `Retry-After` header value verbatim (an HTTP-date, garbage), or none.
    /// [`Scenario::rate_limited_until`] makes the HTTP-date of an instant.
    RateLimitedWith {
        /// The header's value; `None` sends no `Retry-After`.
        retry_after: Option<String>,
    },
    /// `500` with Spotify's error body.
    ServerError,
    /// Waits `delay`, then answers `then`.
    Slow {
        /// How long to wait before answering.
        delay: Duration,
        /// The answer after the wait.
        then: Box<Scenario>,
    },
    /// `401 {"error": {"status": 401, "message": "The access token expired"}}`, whatever
    /// the access token.
    AccessTokenExpired,
}

impl Scenario {
    /// [`Scenario::Slow`] without the boxing.
    pub fn slow(delay: Duration, then: Scenario) -> Self {
        Self::Slow {
            delay,
            then: Box::new(then),
        }
    }

    /// `429` with `Retry-After` as the HTTP-date (IMF-fixdate, RFC 9110 §5.6.7) of `when`.
    pub fn rate_limited_until(when: SystemTime) -> Self {
        Self::RateLimitedWith {
            retry_after: Some(httpdate::fmt_http_date(when)),
        }
    }
}

/// A track as the fake describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTrack {
    /// Spotify id; `None` for a local file (`id: null`, `is_local: true`, a
    /// `spotify:local:…` URI, and no album images whatever `cover_url` says).
    pub id: Option<String>,
    /// Track name.
    pub name: String,
    /// Artist names.
    pub artists: Vec<String>,
    /// Album name.
    pub album: String,
    /// Length in milliseconds; `None` sends `duration_ms: null`.
    pub duration_ms: Option<u64>,
    /// Position in milliseconds.
    pub progress_ms: u64,
    /// The 640 px album cover. The album's `images` list it together with two smaller
    /// variants (`?size=300`, `?size=64`), and not largest first, so a client must pick by
    /// size.
    pub cover_url: Option<String>,
}

impl Default for FakeTrack {
    fn default() -> Self {
        Self {
            id: Some("4uLU6hMCjMI75M1A2tKUQC".to_owned()),
            name: "Fake Song".to_owned(),
            artists: vec!["Fake Artist".to_owned(), "Featured Artist".to_owned()],
            album: "Fake Album".to_owned(),
            duration_ms: Some(212_000),
            progress_ms: 42_000,
            cover_url: None,
        }
    }
}

impl FakeTrack {
    /// A local file of the user's, as Spotify describes one: no id, no cover.
    pub fn local_file(name: &str, artist: &str, album: &str) -> Self {
        Self {
            id: None,
            name: name.to_owned(),
            artists: vec![artist.to_owned()],
            album: album.to_owned(),
            ..Self::default()
        }
    }

    /// `spotify:track:{id}`, or for a local file `spotify:local:{artist}:{album}:{name}:{seconds}`
    /// with `+` for spaces, as Spotify writes them.
    pub fn uri(&self) -> String {
        match &self.id {
            Some(id) => format!("spotify:track:{id}"),
            None => {
                let part = |text: &str| text.replace(' ', "+");
                format!(
                    "spotify:local:{}:{}:{}:{}",
                    part(self.artists.first().map_or("", String::as_str)),
                    part(&self.album),
                    part(&self.name),
                    self.duration_ms.unwrap_or(0) / 1000
                )
            }
        }
    }
}

/// A podcast episode as the fake describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeEpisode {
    /// Spotify id.
    pub id: String,
    /// Episode name.
    pub name: String,
    /// Show name.
    pub show_name: String,
    /// Show publisher.
    pub publisher: String,
    /// Length in milliseconds.
    pub duration_ms: u64,
    /// Position in milliseconds.
    pub progress_ms: u64,
    /// The episode's own 640 px image; `None` sends an empty `images` list.
    pub image_url: Option<String>,
    /// The show's 640 px image.
    pub show_image_url: Option<String>,
}

impl Default for FakeEpisode {
    fn default() -> Self {
        Self {
            id: "512ojhOuo1ktJprKbVcKyQ".to_owned(),
            name: "Fake Episode".to_owned(),
            show_name: "Fake Show".to_owned(),
            publisher: "Fake Publisher".to_owned(),
            duration_ms: 3_600_000,
            progress_ms: 60_000,
            image_url: None,
            show_image_url: None,
        }
    }
}

/// Spotify's image list for a 640 px image, not largest first.
fn images_json(url: Option<&str>) -> Value {
    let Some(url) = url else {
        return json!([]);
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    json!([
        {"url": format!("{url}{separator}size=300"), "width": 300, "height": 300},
        {"url": url, "width": 640, "height": 640},
        {"url": format!("{url}{separator}size=64"), "width": 64, "height": 64},
    ])
}

pub(super) fn track_json(track: &FakeTrack, is_playing: bool) -> Value {
    // Local files have no ids anywhere and no album images.
    let local = track.id.is_none();
    let artists: Vec<Value> = track
        .artists
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let id = (!local).then(|| format!("fake-artist-{index}"));
            json!({"type": "artist", "id": id, "name": name})
        })
        .collect();
    let cover = track.cover_url.as_deref().filter(|_| !local);
    json!({
        "timestamp": now_ms(),
        "context": null,
        "progress_ms": track.progress_ms,
        "is_playing": is_playing,
        "currently_playing_type": "track",
        "actions": {"disallows": {"resuming": is_playing}},
        "item": {
            "type": "track",
            "id": track.id,
            "uri": track.uri(),
            "is_local": local,
            "name": track.name,
            "duration_ms": track.duration_ms,
            "explicit": false,
            "artists": artists,
            "album": {
                "type": "album",
                "id": (!local).then_some("fake-album"),
                "name": track.album,
                "artists": artists,
                "images": images_json(cover),
            },
        },
    })
}

pub(super) fn episode_json(episode: &FakeEpisode, described: bool) -> Value {
    let item = if described {
        json!({
            "type": "episode",
            "id": episode.id,
            "uri": format!("spotify:episode:{}", episode.id),
            "name": episode.name,
            "duration_ms": episode.duration_ms,
            "images": images_json(episode.image_url.as_deref()),
            "show": {
                "type": "show",
                "id": "fake-show",
                "name": episode.show_name,
                "publisher": episode.publisher,
                "images": images_json(episode.show_image_url.as_deref()),
            },
        })
    } else {
        Value::Null
    };
    json!({
        "timestamp": now_ms(),
        "context": null,
        "progress_ms": episode.progress_ms,
        "is_playing": true,
        "currently_playing_type": "episode",
        "actions": {"disallows": {"resuming": true}},
        "item": item,
    })
}

pub(super) fn itemless_json(currently_playing_type: &str) -> Value {
    json!({
        "timestamp": now_ms(),
        "context": null,
        "progress_ms": 5_000,
        "is_playing": true,
        "currently_playing_type": currently_playing_type,
        "actions": {"disallows": {"resuming": true}},
        "item": null,
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
