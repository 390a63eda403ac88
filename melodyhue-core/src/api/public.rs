//! Routes without authentication: health, public profiles and overlays, now playing.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use super::overlays::OverlayView;
use super::response::{json, ok, rfc3339};
use super::users::avatar_url;
use super::{ApiError, Ctx, Reply, path_id};
use crate::color::{Palette, Rgb};
use crate::service::{NowPlaying, Stale, Track};

const USER_NOT_FOUND: &str = "User not found";

/// The header that marks an answer served from a copy while the database is unavailable.
pub const CACHE_STATUS: &str = "cache-status";

/// Marks `response` as served from a stale copy (stale-if-error): RFC 9211's `Cache-Status`,
/// a hit whose freshness ran out `-ttl` seconds ago, e.g.
/// `melodyhue; hit; ttl=-42; detail=stale-if-error`.
fn mark_stale(response: &mut Response<Bytes>, stale: Option<Stale>) {
    let Some(stale) = stale else {
        return;
    };
    let ttl =
        -i64::try_from(stale.age.saturating_sub(stale.fresh_for).as_secs()).unwrap_or(i64::MAX);
    let value = format!("melodyhue; hit; ttl={ttl}; detail=stale-if-error");
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(CACHE_STATUS, value);
    }
}

pub(super) async fn health(cx: &Ctx<'_>) -> Reply {
    match cx.app.store().ping().await {
        // A node of several also says whether it reaches Redis: without it the node still
        // serves (from its own copies), so it stays `ok` for load balancers.
        Ok(()) => Ok(ok(&match cx.app.cluster() {
            None => serde_json::json!({"status": "ok"}),
            Some(cluster) => serde_json::json!({
                "status": "ok",
                "node_id": cluster.node_id(),
                "redis": if cluster.redis_up() { "ok" } else { "unavailable" },
            }),
        })),
        Err(err) => {
            // Logged once per outage by the store; every probe of a monitor is not news.
            tracing::debug!(error = %err, "health check: database unavailable");
            Ok(json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"status": "unavailable", "detail": "Database unavailable"}),
            ))
        }
    }
}

/// A user as anyone may see them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublicUserView {
    /// Id.
    pub id: String,
    /// Name.
    pub username: String,
    /// Creation.
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// Gravatar.
    pub avatar_url: String,
    /// Fallback overlay color.
    pub default_overlay_color: String,
}

pub(super) async fn user(cx: &Ctx<'_>, id: &str) -> Reply {
    let user = cx
        .app
        .store()
        .user_by_id(path_id(id, USER_NOT_FOUND)?)
        .await
        .map_err(crate::service::Error::from)?
        .ok_or(ApiError::NotFound(USER_NOT_FOUND))?;
    let profile = cx.app.accounts().profile(user).await?;
    Ok(ok(&PublicUserView {
        avatar_url: avatar_url(&profile.user.email),
        id: profile.user.id,
        username: profile.user.username,
        created_at: profile.user.created_at,
        default_overlay_color: profile.default_overlay_color,
    }))
}

pub(super) async fn overlay(cx: &Ctx<'_>, id: &str) -> Reply {
    let (overlay, stale) = cx
        .app
        .overlays()
        .public_overlay_or_stale(path_id(id, "Overlay not found")?)
        .await?;
    let mut response = ok(&OverlayView::from(overlay));
    mark_stale(&mut response, stale);
    Ok(response)
}

/// A color as overlays read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ColorView {
    /// Red.
    pub r: u8,
    /// Green.
    pub g: u8,
    /// Blue.
    pub b: u8,
    /// `#rrggbb`, lowercase.
    pub hex: String,
}

impl From<Rgb> for ColorView {
    fn from(c: Rgb) -> Self {
        ColorView {
            r: c.r,
            g: c.g,
            b: c.b,
            hex: c.hex(),
        }
    }
}

/// The swatches of a cover, as `/infos` shows them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaletteView {
    /// Saturated, medium lightness.
    pub vibrant: ColorView,
    /// Desaturated, medium lightness.
    pub muted: ColorView,
    /// Saturated, dark.
    pub dark_vibrant: ColorView,
    /// Desaturated, dark.
    pub dark_muted: ColorView,
    /// Saturated, light.
    pub light_vibrant: ColorView,
    /// Desaturated, light.
    pub light_muted: ColorView,
}

impl From<Palette> for PaletteView {
    fn from(p: Palette) -> Self {
        PaletteView {
            vibrant: p.vibrant.into(),
            muted: p.muted.into(),
            dark_vibrant: p.dark_vibrant.into(),
            dark_muted: p.dark_muted.into(),
            light_vibrant: p.light_vibrant.into(),
            light_muted: p.light_muted.into(),
        }
    }
}

/// The body of `/color/{user_id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ColorResponse<'a> {
    /// The color.
    pub color: ColorView,
    /// How long the answer took.
    pub processing_time_ms: f64,
    /// Always `album`.
    pub source: &'static str,
    /// Always `success`.
    pub status: &'static str,
    /// Unix seconds.
    pub timestamp: i64,
    /// The user id asked for.
    pub user: &'a str,
}

/// The `track` of `/infos/{user_id}`. What Spotify did not say (a local file's id, a missing
/// duration) is `null`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum TrackView<'a> {
    /// Something plays (or is paused).
    Playing {
        /// Spotify id; `null` for a local file.
        id: Option<&'a str>,
        /// Title.
        name: Option<&'a str>,
        /// Artists joined by ", ".
        artist: Option<&'a str>,
        /// Album or show.
        album: Option<&'a str>,
        /// Length, in milliseconds.
        duration_ms: Option<u64>,
        /// Position, in milliseconds, never beyond `duration_ms`.
        progress_ms: Option<u64>,
        /// Playing or paused.
        is_playing: bool,
        /// Cover.
        image_url: Option<&'a str>,
        /// Unix seconds.
        timestamp: i64,
    },
    /// Nothing plays.
    Nothing {
        /// Always `null`.
        id: Option<&'a str>,
        /// Always "No music playing".
        name: &'static str,
        /// Always `false`.
        is_playing: bool,
    },
}

impl<'a> TrackView<'a> {
    pub(super) fn of(track: Option<&'a Track>, timestamp: i64) -> Self {
        match track {
            Some(t) => TrackView::Playing {
                id: t.id.as_deref(),
                name: t.name.as_deref(),
                artist: t.artist.as_deref(),
                album: t.album.as_deref(),
                duration_ms: t.duration_ms,
                progress_ms: t.progress_ms,
                is_playing: t.is_playing,
                image_url: t.image_url.as_deref(),
                timestamp,
            },
            None => TrackView::Nothing {
                id: None,
                name: "No music playing",
                is_playing: false,
            },
        }
    }
}

/// The body of `/infos/{user_id}`: `/color`'s plus the track, the cover's swatches and a
/// readable text color.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InfosResponse<'a> {
    /// Everything `/color` answers.
    #[serde(flatten)]
    pub color: ColorResponse<'a>,
    /// The track.
    pub track: TrackView<'a>,
    /// The cover's swatches while playing, else `null`.
    pub palette: Option<PaletteView>,
    /// Text color readable on `color` (WCAG contrast of at least 4.5:1).
    pub text_color: ColorView,
}

fn color_response<'a>(
    user: &'a str,
    now_playing: &NowPlaying,
    timestamp: i64,
) -> ColorResponse<'a> {
    ColorResponse {
        color: now_playing.color.into(),
        processing_time_ms: (now_playing.processing_time_ms * 1000.0).round() / 1000.0,
        source: "album",
        status: "success",
        timestamp,
        user,
    }
}

pub(super) async fn color(cx: &Ctx<'_>, id: &str) -> Reply {
    let id = path_id(id, USER_NOT_FOUND)?;
    let now_playing = cx.app.now_playing().of(id).await?;
    let mut response = ok(&color_response(id, &now_playing, cx.app.now().timestamp()));
    mark_stale(&mut response, now_playing.stale);
    Ok(response)
}

/// The body of `/infos/{user_id}` (and of each `/infos/{user_id}/events` event).
pub(super) fn infos_response<'a>(
    user: &'a str,
    now_playing: &'a NowPlaying,
    timestamp: i64,
) -> InfosResponse<'a> {
    InfosResponse {
        color: color_response(user, now_playing, timestamp),
        track: TrackView::of(now_playing.track.as_ref(), timestamp),
        palette: now_playing.palette.map(PaletteView::from),
        text_color: now_playing.text_color.into(),
    }
}

/// A path's user id, or `404 User not found` when no id can be like it.
pub(super) fn user_path_id(id: &str) -> Result<&str, ApiError> {
    path_id(id, USER_NOT_FOUND)
}

pub(super) async fn infos(cx: &Ctx<'_>, id: &str) -> Reply {
    let id = user_path_id(id)?;
    let now_playing = cx.app.now_playing().of(id).await?;
    let mut response = ok(&infos_response(id, &now_playing, cx.app.now().timestamp()));
    mark_stale(&mut response, now_playing.stale);
    Ok(response)
}
