//! Spotify: the Web API client and the now-playing hub.

mod client;
pub mod coordination;
pub mod hub;
mod images;
mod wire;

pub use client::{
    AppCredentials, DEFAULT_ACCOUNTS_URL, DEFAULT_API_URL, DEFAULT_RETRY_AFTER, DEFAULT_TIMEOUT,
    ItemKind, MAX_RETRY_AFTER, NowPlaying, Playback, SpotifyClient, SpotifyEndpoints, SpotifyError,
    TokenGrant, retry_after_delay,
};
pub use hub::NowPlayingHub;
pub use images::{AllowedHost, ImagePolicy};
