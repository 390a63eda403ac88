//! The Spotify section: its endpoints, polling, cover hosts and timeout (`SPOTIFY_*`).

use std::time::Duration;

use super::ConfigError;
use super::vars::{Vars, invalid};
use crate::spotify::{AllowedHost, ImagePolicy};

/// Spotify endpoints and polling.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SpotifyConfig {
    /// `SPOTIFY_REDIRECT_URI` (`FRONTEND_URL` + `/spotify/callback`).
    pub redirect_uri: String,
    /// `SPOTIFY_ACCOUNTS_URL` (<https://accounts.spotify.com>).
    pub accounts_url: String,
    /// `SPOTIFY_API_URL` (<https://api.spotify.com>).
    pub api_url: String,
    /// `SPOTIFY_POLLING_INTERVAL` seconds (3).
    pub polling_interval: Duration,
    /// `SPOTIFY_IMAGE_HOSTS`: hosts cover images may come from (default: Spotify's own).
    pub image_hosts: Vec<AllowedHost>,
    /// Timeout of every call to Spotify (`SPOTIFY_TIMEOUT`, 5 s).
    pub timeout: Duration,
}

impl SpotifyConfig {
    /// The `SPOTIFY_*` variables; the redirect URI defaults to `frontend_url`'s callback page.
    pub(super) fn read(vars: &Vars, frontend_url: &str) -> Result<Self, ConfigError> {
        Ok(SpotifyConfig {
            redirect_uri: vars.url(
                "SPOTIFY_REDIRECT_URI",
                &format!("{frontend_url}/spotify/callback"),
            )?,
            accounts_url: vars.url("SPOTIFY_ACCOUNTS_URL", "https://accounts.spotify.com")?,
            api_url: vars.url("SPOTIFY_API_URL", "https://api.spotify.com")?,
            polling_interval: vars.seconds("SPOTIFY_POLLING_INTERVAL", 3.0)?,
            image_hosts: ImagePolicy::parse_hosts(
                vars.get("SPOTIFY_IMAGE_HOSTS")
                    .unwrap_or(ImagePolicy::DEFAULT_HOSTS),
            )
            .map_err(|reason| invalid("SPOTIFY_IMAGE_HOSTS", reason))?,
            timeout: vars.seconds("SPOTIFY_TIMEOUT", 5.0)?,
        })
    }
}
