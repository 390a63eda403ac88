//! `/spotify/*`, the now-playing hub behind `/color` and `/infos`, and `/ws`, against a fake
//! Spotify on loopback: the helpers every part shares, and the cases by theme.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

use super::{Harness, TEST_ENCRYPTION_KEY, TestServer, TestUser};
use crate::fake_spotify::{FakeSpotify, FakeTrack, Scenario};
use melodyhue_core::secrets::SecretBox;

mod connection;
mod failures;
mod now_playing;
mod tokens;
mod websocket;

pub use connection::*;
pub use failures::*;
pub use now_playing::*;
pub use tokens::*;
pub use websocket::*;

const CLIENT_ID: &str = "test-client-id";
const CLIENT_SECRET: &str = "test-client-secret";

/// A solid-color 64x64 PNG.
pub(super) fn cover_png(r: u8, g: u8, b: u8) -> Vec<u8> {
    let mut png = Vec::new();
    image::RgbImage::from_pixel(64, 64, image::Rgb([r, g, b]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

pub(super) struct Setup {
    pub(super) fake: FakeSpotify,
    pub(super) server: TestServer,
}

/// A fake Spotify and a server pointed at it, polling every `interval` seconds.
pub(super) async fn setup(h: &Harness, interval: &str, extra: &[(&str, &str)]) -> Setup {
    let fake = FakeSpotify::start().await.unwrap();
    fake.add_app(CLIENT_ID, CLIENT_SECRET);
    let url = fake.url();
    let mut vars = vec![
        ("SPOTIFY_ACCOUNTS_URL", url.as_str()),
        ("SPOTIFY_API_URL", url.as_str()),
        ("SPOTIFY_IMAGE_HOSTS", "http://127.0.0.1"),
        ("SPOTIFY_POLLING_INTERVAL", interval),
    ];
    vars.extend_from_slice(extra);
    let server = TestServer::start_with(h, &vars).await;
    Setup { fake, server }
}

/// A registered user whose Spotify account is connected with `refresh_token`.
pub(super) async fn connected_user(
    s: &Setup,
    name: &str,
    refresh_token: &str,
    scenario: Scenario,
) -> TestUser {
    let user = s.server.register(name).await;
    s.fake.set_scenario(refresh_token, scenario);
    s.server
        .patch(
            "/spotify/credentials",
            Some(&user.access_token),
            json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": refresh_token}),
        )
        .await
        .assert_status(200);
    user
}

pub(super) fn playing(cover_url: Option<String>) -> Scenario {
    Scenario::Playing(FakeTrack {
        cover_url,
        ..FakeTrack::default()
    })
}

fn hex(reply: &Value) -> String {
    reply["color"]["hex"].as_str().unwrap().to_owned()
}

/// Where the MelodyHue web frontend asks Spotify to send the user back.
const FRONTEND_CALLBACK: &str = "http://localhost:4200/auth/spotify/callback";

/// What Spotify sent the browser back with.
struct SpotifyRedirect {
    code: String,
    state: String,
}

/// The connect journey up to the callback: `/spotify/auth/url`, then the user's browser at
/// the (fake) Spotify, which approves and redirects to `redirect_uri` with a code and the state.
async fn authorize(server: &TestServer, user: &TestUser, redirect_uri: &str) -> SpotifyRedirect {
    let path = format!(
        "/spotify/auth/url?redirect_uri={}",
        percent_encoding::utf8_percent_encode(redirect_uri, percent_encoding::NON_ALPHANUMERIC)
    );
    let reply = server.get(&path, Some(&user.access_token)).await;
    reply.assert_status(200);
    let at_spotify = server
        .http
        .get(reply.body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(at_spotify.status(), 302);
    let back = url::Url::parse(at_spotify.headers()["location"].to_str().unwrap()).unwrap();
    assert!(back.as_str().starts_with(redirect_uri), "{back}");
    let param = |name: &str| {
        back.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .unwrap_or_else(|| panic!("no {name} in {back}"))
    };
    SpotifyRedirect {
        code: param("code"),
        state: param("state"),
    }
}

/// A registered user with the app credentials set, not yet connected.
async fn user_with_app(s: &Setup, name: &str) -> TestUser {
    let user = s.server.register(name).await;
    s.server
        .patch(
            "/spotify/credentials",
            Some(&user.access_token),
            json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
        )
        .await
        .assert_status(200);
    user
}

/// Another server of the same deployment: same database, same secrets.
async fn second_node(h: &Harness, first: &TestServer, extra: &[(&str, &str)]) -> TestServer {
    let database_url = first.app.config().database_url.expose().to_owned();
    let mut vars = vec![("DATABASE_URL", database_url.as_str())];
    vars.extend_from_slice(extra);
    TestServer::start_with(h, &vars).await
}

/// The refresh token stored for `user_id`, decrypted.
async fn stored_refresh_token(server: &TestServer, user_id: &str) -> Option<String> {
    let stored = server
        .app
        .store()
        .spotify_credentials(user_id)
        .await
        .unwrap()?
        .refresh_token_encrypted?;
    Some(
        SecretBox::new(TEST_ENCRYPTION_KEY)
            .decrypt(&stored)
            .unwrap(),
    )
}

/// The refresh tokens a server sent to `fake`, in order.
pub(super) fn refresh_tokens_sent(fake: &FakeSpotify) -> Vec<String> {
    fake.token_requests()
        .iter()
        .filter(|r| r.field("grant_type") == Some("refresh_token"))
        .filter_map(|r| r.field("refresh_token").map(str::to_owned))
        .collect()
}

/// Polls `check` every 100 ms until it holds, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(super) fn ws_url(server: &TestServer, query: &str) -> String {
    format!("{}/ws{query}", server.base.replacen("http://", "ws://", 1))
}

pub(super) async fn next_json(
    socket: &mut (impl StreamExt<Item = Result<Message, tungstenite::Error>> + Unpin),
) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .expect("a valid frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

pub(super) async fn close_code(
    socket: &mut (impl StreamExt<Item = Result<Message, tungstenite::Error>> + Unpin),
) -> u16 {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("closed within 10 s")
        {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(Message::Close(None))) | None => return 1005,
            Some(Ok(_)) => {}
            Some(Err(err)) => panic!("socket error: {err}"),
        }
    }
}
