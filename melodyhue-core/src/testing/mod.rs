//! Real test doubles for what MelodyHue talks to over the network: a fake Spotify
//! (an HTTP server on loopback) and an SMTP catcher (an SMTP server on loopback that
//! keeps the messages). Behind the `testing` feature; the HTTP suite uses them.

pub mod fake_spotify;
pub mod smtp;
