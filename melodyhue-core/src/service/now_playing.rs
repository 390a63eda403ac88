//! What `/color` and `/infos` show for a user: the playing track and its cover color, or the
//! user's fallback color.

use std::time::Instant;

use super::{Error, Result};
use crate::App;

/// A track (or episode) as overlays show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// Spotify id.
    pub id: String,
    /// Title.
    pub name: String,
    /// Artist names joined by ", " (the show for episodes).
    pub artist: String,
    /// Album (the show for episodes).
    pub album: String,
    /// Length.
    pub duration_ms: u64,
    /// Position.
    pub progress_ms: u64,
    /// Whether it plays (false when paused).
    pub is_playing: bool,
    /// Cover image.
    pub image_url: Option<String>,
}

/// What a user's overlay shows now.
#[derive(Debug, Clone, PartialEq)]
pub struct NowPlaying {
    /// `#rrggbb`: the cover's color while playing, else the user's fallback color.
    pub color: String,
    /// The playing track, if any.
    pub track: Option<Track>,
    /// How long the answer took, in milliseconds.
    pub processing_time_ms: f64,
}

impl App {
    /// The now-playing state of `user_id`; `User not found` for an unknown user.
    pub async fn now_playing(&self, user_id: &str) -> Result<NowPlaying> {
        let started = Instant::now();
        let color = self
            .inner()
            .store
            .fallback_color(user_id)
            .await?
            .ok_or(Error::NotFound("User not found"))?;
        Ok(NowPlaying {
            color,
            track: None,
            processing_time_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }
}
