//! The JSON the nodes exchange through Redis: a user's now-playing state (kept under
//! `<prefix>now-playing:<user id>` and published on `<prefix>now-playing`), and changes
//! (published on `<prefix>changes`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::changes::Change;
use crate::color::{ColorReport, Palette, Rgb};
use crate::service::now_playing::hub::{PlayingItem, Snapshot};
use crate::spotify::{CurrentlyPlaying, CurrentlyPlayingType};

/// A user's state as the polling node saw it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SharedState {
    /// Whose.
    pub user_id: String,
    /// The sending process (`Cluster`'s owner name), so that it skips its own messages.
    pub origin: String,
    /// The lease's fencing token: states are ordered by it, then by `shared_at_ms` (one
    /// holder's clock), never across the clocks of two nodes.
    pub fence: u64,
    /// When it was shared, in milliseconds since the Unix epoch (ages the position).
    pub shared_at_ms: u64,
    /// What it shows.
    pub snapshot: WireSnapshot,
}

/// A change made through one node, for the others.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SharedChange {
    /// The sending process.
    pub origin: String,
    /// What changed.
    pub change: Change,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(super) enum WireSnapshot {
    Disconnected,
    Idle,
    Playing {
        item: Box<WireItem>,
        cover: Option<WireReport>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WireItem {
    kind: WireKind,
    is_playing: bool,
    /// As of `shared_at_ms`.
    progress_ms: Option<u64>,
    id: Option<String>,
    uri: Option<String>,
    name: Option<String>,
    artists: Vec<String>,
    album: Option<String>,
    duration_ms: Option<u64>,
    image_url: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireKind {
    Track,
    Episode,
    Ad,
    Unknown,
}

/// An sRGB color as `[r, g, b]`.
type WireRgb = [u8; 3];

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WireReport {
    color: WireRgb,
    /// vibrant, muted, dark vibrant, dark muted, light vibrant, light muted.
    palette: [WireRgb; 6],
    text_color: WireRgb,
}

fn rgb(color: Rgb) -> WireRgb {
    [color.r, color.g, color.b]
}

fn from_rgb([r, g, b]: WireRgb) -> Rgb {
    Rgb::new(r, g, b)
}

/// Now, in milliseconds since the Unix epoch.
pub(super) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

impl WireSnapshot {
    /// `None` for [`Snapshot::Pending`]: nothing to share yet.
    pub(super) fn from_snapshot(snapshot: &Snapshot) -> Option<WireSnapshot> {
        Some(match snapshot {
            Snapshot::Pending => return None,
            Snapshot::Disconnected => WireSnapshot::Disconnected,
            Snapshot::Idle => WireSnapshot::Idle,
            Snapshot::Playing(playing) => WireSnapshot::Playing {
                item: Box::new(WireItem::from_playing(playing)),
                cover: playing.cover.as_deref().map(|report| WireReport {
                    color: rgb(report.color),
                    palette: [
                        rgb(report.palette.vibrant),
                        rgb(report.palette.muted),
                        rgb(report.palette.dark_vibrant),
                        rgb(report.palette.dark_muted),
                        rgb(report.palette.light_vibrant),
                        rgb(report.palette.light_muted),
                    ],
                    text_color: rgb(report.text_color),
                }),
            },
        })
    }

    /// The snapshot, its position aged by `age` (the time since it was shared).
    pub(super) fn into_snapshot(self, age: Duration) -> Snapshot {
        match self {
            WireSnapshot::Disconnected => Snapshot::Disconnected,
            WireSnapshot::Idle => Snapshot::Idle,
            WireSnapshot::Playing { item, cover } => {
                let cover = cover.map(|report| {
                    let [
                        vibrant,
                        muted,
                        dark_vibrant,
                        dark_muted,
                        light_vibrant,
                        light_muted,
                    ] = report.palette.map(from_rgb);
                    Arc::new(ColorReport {
                        color: from_rgb(report.color),
                        palette: Palette {
                            vibrant,
                            muted,
                            dark_vibrant,
                            dark_muted,
                            light_vibrant,
                            light_muted,
                        },
                        text_color: from_rgb(report.text_color),
                    })
                });
                let now = Instant::now();
                Snapshot::Playing(Box::new(PlayingItem {
                    item: item.into_currently_playing(),
                    cover,
                    observed_at: now.checked_sub(age).unwrap_or(now),
                }))
            }
        }
    }
}

impl WireItem {
    fn from_playing(playing: &PlayingItem) -> WireItem {
        let item = &playing.item;
        WireItem {
            kind: match item.currently_playing_type {
                CurrentlyPlayingType::Track => WireKind::Track,
                CurrentlyPlayingType::Episode => WireKind::Episode,
                CurrentlyPlayingType::Ad => WireKind::Ad,
                CurrentlyPlayingType::Unknown => WireKind::Unknown,
            },
            is_playing: item.is_playing,
            progress_ms: playing.progress_ms(),
            id: item.id.clone(),
            uri: item.uri.clone(),
            name: item.name.clone(),
            artists: item.artists.clone(),
            album: item.album.clone(),
            duration_ms: item.duration_ms,
            image_url: item.image_url.clone(),
        }
    }

    fn into_currently_playing(self) -> CurrentlyPlaying {
        CurrentlyPlaying {
            currently_playing_type: match self.kind {
                WireKind::Track => CurrentlyPlayingType::Track,
                WireKind::Episode => CurrentlyPlayingType::Episode,
                WireKind::Ad => CurrentlyPlayingType::Ad,
                WireKind::Unknown => CurrentlyPlayingType::Unknown,
            },
            is_playing: self.is_playing,
            progress_ms: self.progress_ms,
            id: self.id,
            uri: self.uri,
            name: self.name,
            artists: self.artists,
            album: self.album,
            duration_ms: self.duration_ms,
            image_url: self.image_url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_playing_snapshot_crosses_the_wire_unchanged_but_for_its_age() {
        let report = ColorReport {
            color: Rgb::new(1, 2, 3),
            palette: Palette {
                vibrant: Rgb::new(4, 5, 6),
                muted: Rgb::new(7, 8, 9),
                dark_vibrant: Rgb::new(10, 11, 12),
                dark_muted: Rgb::new(13, 14, 15),
                light_vibrant: Rgb::new(16, 17, 18),
                light_muted: Rgb::new(19, 20, 21),
            },
            text_color: Rgb::new(255, 255, 255),
        };
        let sent = Snapshot::Playing(Box::new(PlayingItem {
            item: CurrentlyPlaying {
                currently_playing_type: CurrentlyPlayingType::Episode,
                is_playing: false,
                progress_ms: Some(1_000),
                id: Some("id".into()),
                uri: Some("spotify:episode:id".into()),
                name: Some("Name".into()),
                artists: vec!["A".into(), "B".into()],
                album: Some("Show".into()),
                duration_ms: Some(9_000),
                image_url: Some("https://i.scdn.co/image/x".into()),
            },
            cover: Some(Arc::new(report)),
            observed_at: Instant::now(),
        }));
        let json = serde_json::to_string(&WireSnapshot::from_snapshot(&sent)).unwrap();
        let back: WireSnapshot = serde_json::from_str(&json).unwrap();
        let received = back.into_snapshot(Duration::from_millis(500));
        let (Snapshot::Playing(a), Snapshot::Playing(b)) = (&sent, &received) else {
            panic!("{received:?}");
        };
        assert_eq!(a.item, b.item);
        assert_eq!(a.cover, b.cover);
        assert!(WireSnapshot::from_snapshot(&Snapshot::Pending).is_none());
    }
}
