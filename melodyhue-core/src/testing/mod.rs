//! Real test doubles for what MelodyHue talks to over the network: a fake Spotify
//! (an HTTP server on loopback) and an SMTP catcher (an SMTP server on loopback that
//! keeps the messages), plus scratch databases on the machine's database servers.
//! Behind the `testing` feature; the HTTP suite uses them.

pub mod database;
pub mod fake_spotify;
pub mod smtp;
