//! Spotify: the Web API client ([`SpotifyClient`]: OAuth code exchange and refresh, the
//! currently-playing endpoint, cover downloads), the answers it returns in Spotify's own terms
//! ([`CurrentlyPlaying`], [`TokenGrant`]), and which hosts covers may come from
//! ([`ImagePolicy`]). It holds no per-user state: polling the users someone watches is the
//! now-playing hub's job ([`crate::service::now_playing::hub`]).

mod client;
mod images;
mod wire;

pub use client::{
    AppCredentials, CurrentlyPlaying, CurrentlyPlayingType, DEFAULT_ACCOUNTS_URL, DEFAULT_API_URL,
    DEFAULT_RETRY_AFTER, DEFAULT_TIMEOUT, MAX_RETRY_AFTER, Playback, SpotifyClient,
    SpotifyEndpoints, SpotifyError, TokenGrant, retry_after_delay,
};
pub use images::{AllowedHost, ImagePolicy};
