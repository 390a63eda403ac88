//! Spotify: the Web API client and the now-playing hub.
