//! `/spotify/*`, the now-playing hub behind `/color` and `/infos`, and `/ws`, against a fake
//! Spotify on loopback.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use super::{Harness, Reply, TEST_ENCRYPTION_KEY, TestServer, TestUser};
use crate::fake_spotify::{Endpoint, FakeEpisode, FakeSpotify, FakeTrack, Scenario};
use melodyhue_core::color::{self, Rgb};
use melodyhue_core::secrets::SecretBox;

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
        .unwrap()
        .refresh_token_encrypted?;
    Some(
        SecretBox::new(TEST_ENCRYPTION_KEY)
            .decrypt(&stored)
            .unwrap(),
    )
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

pub async fn spotify_credentials_are_stored_encrypted(h: &Harness) {
    let s = setup(h, "3", &[]).await;
    let user = s.server.register("creds").await;
    let token = Some(user.access_token.as_str());
    let status = s.server.get("/spotify/credentials/status", token).await;
    status.assert_status(200);
    assert_eq!(
        status.body,
        json!({"has_client_id": false, "has_client_secret": false, "has_refresh_token": false})
    );
    let patched = s
        .server
        .patch(
            "/spotify/credentials",
            token,
            json!({"client_id": "cid", "client_secret": "top-secret", "refresh_token": "rt-1"}),
        )
        .await;
    patched.assert_status(200);
    assert_eq!(
        patched.body,
        json!({"has_client_id": true, "has_client_secret": true, "has_refresh_token": true})
    );
    let stored = s
        .server
        .app
        .store()
        .spotify_credentials(&user.id)
        .await
        .unwrap();
    assert_eq!(stored.client_id.as_deref(), Some("cid"));
    let secret = stored.client_secret_encrypted.unwrap();
    assert!(!secret.contains("top-secret"));
    let secrets = SecretBox::new(TEST_ENCRYPTION_KEY);
    assert_eq!(secrets.decrypt(&secret).unwrap(), "top-secret");
    assert_eq!(
        secrets
            .decrypt(&stored.refresh_token_encrypted.unwrap())
            .unwrap(),
        "rt-1"
    );
    // A blank value clears; an absent one keeps.
    let cleared = s
        .server
        .patch(
            "/spotify/credentials",
            token,
            json!({"client_secret": "  "}),
        )
        .await;
    assert_eq!(
        cleared.body,
        json!({"has_client_id": true, "has_client_secret": false, "has_refresh_token": true})
    );
    s.server
        .patch("/spotify/credentials", token, json!({"client_id": 5}))
        .await
        .assert_status(422);
    s.server
        .get("/spotify/credentials/status", None)
        .await
        .assert_status(401);
}

pub async fn spotify_authorize_url(h: &Harness) {
    let s = setup(
        h,
        "3",
        &[("SPOTIFY_REDIRECT_URI", "https://app.example/cb")],
    )
    .await;
    let user = s.server.register("authurl").await;
    let token = Some(user.access_token.as_str());
    let missing = s.server.get("/spotify/auth/url", token).await;
    missing.assert_status(400);
    assert_eq!(missing.detail(), "Spotify client id not configured");
    s.server
        .patch("/spotify/credentials", token, json!({"client_id": "my id"}))
        .await
        .assert_status(200);
    let default = s.server.get("/spotify/auth/url", token).await;
    default.assert_status(200);
    let url = default.body["url"].as_str().unwrap();
    let (without_state, state) = url.split_once("&state=").unwrap();
    assert_eq!(
        without_state,
        format!(
            "{}/authorize?client_id=my%20id&response_type=code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=user-read-currently-playing%20user-read-playback-state&show_dialog=false",
            s.fake.url()
        )
    );
    // 32 random bytes, base64url: nothing to percent-encode, and never the same twice.
    assert_eq!(state.len(), 43, "{state}");
    assert!(
        state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let again = s.server.get("/spotify/auth/url", token).await;
    assert!(!again.body["url"].as_str().unwrap().ends_with(state));
    let custom = s
        .server
        .get(
            "/spotify/auth/url?redirect_uri=http%3A%2F%2Flocalhost%2Fx",
            token,
        )
        .await;
    assert!(
        custom.body["url"]
            .as_str()
            .unwrap()
            .contains("redirect_uri=http%3A%2F%2Flocalhost%2Fx&")
    );
    // A redirect URI must be an absolute URL, byte for byte what Spotify will compare; a NUL
    // is refused first, as in every string the API reads.
    for (bad, error) in [
        ("relative%2Fpath", "url_parsing"),
        ("http%3A%2F%2Fx%2F%00", "value_error"),
        ("http%3A%2F%2Fx%2F%20y", "url_parsing"),
        ("%20", "url_parsing"),
    ] {
        let reply = s
            .server
            .get(&format!("/spotify/auth/url?redirect_uri={bad}"), token)
            .await;
        reply.assert_status(422);
        assert_eq!(reply.body["detail"][0]["type"], error, "{bad}");
    }
    s.server
        .get("/spotify/auth/url", None)
        .await
        .assert_status(401);
}

pub async fn spotify_callback_connects_and_logout_disconnects(h: &Harness) {
    let s = setup(h, "3", &[]).await;
    let user = user_with_app(&s, "callback").await;
    let token = Some(user.access_token.as_str());
    let missing = s.server.get("/spotify/callback", token).await;
    missing.assert_status(400);
    assert_eq!(missing.detail(), "Missing authorization code");
    let unstarted = s.server.get("/spotify/callback?code=nope", token).await;
    unstarted.assert_status(400);
    assert_eq!(unstarted.detail(), "No Spotify authorization in progress");
    s.fake.approve_as("rt-from-code");
    authorize(&s.server, &user, "https://app.example/cb").await;
    let refused = s.server.get("/spotify/callback?code=nope", token).await;
    refused.assert_status(400);
    assert_eq!(refused.detail(), "Spotify refused the authorization code");
    assert_eq!(
        s.server.get("/spotify/auth/status", token).await.body,
        json!({"authenticated": false})
    );
    // A client that passes the redirect URI itself (and the state) keeps working.
    let redirect = authorize(&s.server, &user, "https://app.example/cb").await;
    let ok = s
        .server
        .get(
            &format!(
                "/spotify/callback?code={}&state={}&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
                redirect.code, redirect.state
            ),
            token,
        )
        .await;
    ok.assert_status(200);
    assert_eq!(ok.body, json!({"status": "ok"}));
    assert_eq!(
        s.server.get("/spotify/auth/status", token).await.body,
        json!({"authenticated": true})
    );
    let logout = s.server.post("/spotify/logout", token, json!({})).await;
    logout.assert_status(200);
    assert_eq!(logout.body, json!({"status": "logged_out"}));
    assert_eq!(
        s.server.get("/spotify/auth/status", token).await.body,
        json!({"authenticated": false})
    );
    let status = s.server.get("/spotify/credentials/status", token).await;
    assert_eq!(
        status.body["has_client_id"], true,
        "logout keeps the app credentials"
    );
    s.server
        .get("/spotify/callback?code=x", None)
        .await
        .assert_status(401);
}

/// The MelodyHue web frontend's journey: it asks for the URL with its own callback page as
/// `redirect_uri`, and that page then calls `/spotify/callback` with the `code` alone.
pub async fn spotify_connects_the_way_the_frontend_does(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let png = cover_png(180, 20, 90);
    let cover = s.fake.add_image("fe.png", png.clone(), "image/png");
    let user = user_with_app(&s, "frontend").await;
    s.fake.approve_as("rt-frontend");
    s.fake.set_scenario("rt-frontend", playing(Some(cover)));
    let redirect = authorize(&s.server, &user, FRONTEND_CALLBACK).await;
    let reply = s
        .server
        .get(
            &format!("/spotify/callback?code={}", redirect.code),
            Some(&user.access_token),
        )
        .await;
    reply.assert_status(200);
    let exchange = s.fake.token_requests().pop().unwrap();
    assert_eq!(exchange.field("grant_type"), Some("authorization_code"));
    assert_eq!(exchange.field("code"), Some(redirect.code.as_str()));
    assert_eq!(exchange.field("redirect_uri"), Some(FRONTEND_CALLBACK));
    assert_eq!(
        s.server
            .get("/spotify/auth/status", Some(&user.access_token))
            .await
            .body,
        json!({"authenticated": true})
    );
    let color = s.server.get(&format!("/color/{}", user.id), None).await;
    assert_eq!(hex(&color.body), color::analyze(&png).unwrap().color.hex());
    // The state Spotify sent back is used up: the browser's back button cannot replay it.
    let replay = s
        .server
        .get(
            &format!(
                "/spotify/callback?code={}&state={}",
                redirect.code, redirect.state
            ),
            Some(&user.access_token),
        )
        .await;
    replay.assert_status(400);
    assert_eq!(
        replay.detail(),
        "Invalid or expired Spotify authorization state"
    );
}

/// A `state` is the caller's, works once, for ten minutes, on any server of the deployment;
/// a refused one costs no call to Spotify.
pub async fn spotify_state_is_single_use_bound_and_expiring(h: &Harness) {
    let s = setup(h, "3", &[]).await;
    let alice = user_with_app(&s, "alice").await;
    let mallory = user_with_app(&s, "mallory").await;
    s.fake.approve_as("rt-alice");
    let callback = |user: &TestUser, query: String| {
        let token = user.access_token.clone();
        let server = &s.server;
        async move {
            server
                .get(&format!("/spotify/callback?{query}"), Some(&token))
                .await
        }
    };
    let refused = |reply: Reply, detail: &str| {
        reply.assert_status(400);
        assert_eq!(reply.detail(), detail);
    };
    const BAD_STATE: &str = "Invalid or expired Spotify authorization state";

    let first = authorize(&s.server, &alice, FRONTEND_CALLBACK).await;
    let calls_before = s.fake.calls(Endpoint::Token);
    // Another user's state, an unknown one, and (for the other user) no state at all.
    refused(
        callback(
            &mallory,
            format!("code={}&state={}", first.code, first.state),
        )
        .await,
        BAD_STATE,
    );
    refused(
        callback(&alice, format!("code={}&state=made-up", first.code)).await,
        BAD_STATE,
    );
    refused(
        callback(&mallory, format!("code={}", first.code)).await,
        "No Spotify authorization in progress",
    );
    assert_eq!(
        s.fake.calls(Endpoint::Token),
        calls_before,
        "nothing refused reached Spotify"
    );
    // The owner still can, once.
    callback(&alice, format!("code={}&state={}", first.code, first.state))
        .await
        .assert_status(200);
    refused(
        callback(&alice, format!("code={}&state={}", first.code, first.state)).await,
        BAD_STATE,
    );
    refused(
        callback(&alice, format!("code={}", first.code)).await,
        "No Spotify authorization in progress",
    );

    // Ten minutes, by the server's clock.
    let late = authorize(&s.server, &alice, FRONTEND_CALLBACK).await;
    let late_too = authorize(&s.server, &alice, FRONTEND_CALLBACK).await;
    s.server.clock.advance(chrono::Duration::seconds(601));
    refused(
        callback(&alice, format!("code={}&state={}", late.code, late.state)).await,
        BAD_STATE,
    );
    refused(
        callback(&alice, format!("code={}", late_too.code)).await,
        "No Spotify authorization in progress",
    );

    // Started on one server, completed on another.
    let other = second_node(h, &s.server, &[("SPOTIFY_ACCOUNTS_URL", &s.fake.url())]).await;
    other.clock.advance(chrono::Duration::seconds(601));
    let started_here = authorize(&s.server, &alice, FRONTEND_CALLBACK).await;
    let reply = other
        .get(
            &format!("/spotify/callback?code={}", started_here.code),
            Some(&alice.access_token),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(
        s.fake.token_requests().pop().unwrap().field("redirect_uri"),
        Some(FRONTEND_CALLBACK)
    );
}

/// Two tabs: each authorization completes with its own redirect URI, in any order.
pub async fn spotify_authorizations_in_two_tabs_complete_with_their_own_redirect(h: &Harness) {
    let s = setup(h, "3", &[]).await;
    let user = user_with_app(&s, "tabs").await;
    s.fake.approve_as("rt-tabs");
    let first = authorize(&s.server, &user, "https://one.example/cb").await;
    let second = authorize(&s.server, &user, "https://two.example/cb").await;
    for (tab, redirect_uri) in [
        (&first, "https://one.example/cb"),
        (&second, "https://two.example/cb"),
    ] {
        s.server
            .get(
                &format!("/spotify/callback?code={}&state={}", tab.code, tab.state),
                Some(&user.access_token),
            )
            .await
            .assert_status(200);
        assert_eq!(
            s.fake.token_requests().pop().unwrap().field("redirect_uri"),
            Some(redirect_uri)
        );
    }
}

pub async fn color_follows_the_playing_cover(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let png = cover_png(200, 40, 40);
    let expected = color::analyze(&png).unwrap();
    let cover = s.fake.add_image("red.png", png, "image/png");
    let user = connected_user(&s, "player", "rt-player", playing(Some(cover.clone()))).await;
    let reply = s.server.get(&format!("/color/{}", user.id), None).await;
    reply.assert_status(200);
    assert_eq!(hex(&reply.body), expected.color.hex());
    assert_eq!(reply.body["color"]["r"], expected.color.r);
    assert_eq!(reply.body["source"], "album");
    let infos = s.server.get(&format!("/infos/{}", user.id), None).await;
    let track = &infos.body["track"];
    assert_eq!(track["id"], "4uLU6hMCjMI75M1A2tKUQC");
    assert_eq!(track["name"], "Fake Song");
    assert_eq!(track["artist"], "Fake Artist, Featured Artist");
    assert_eq!(track["album"], "Fake Album");
    assert_eq!(track["duration_ms"], 212_000);
    assert!(track["progress_ms"].as_u64().unwrap() >= 42_000);
    assert_eq!(track["is_playing"], true);
    assert_eq!(track["image_url"], cover.as_str());
    assert!(track["timestamp"].is_i64());
    assert_eq!(
        infos.body["palette"]["vibrant"]["hex"],
        expected.palette.vibrant.hex()
    );
    let text = Rgb::from_hex(infos.body["text_color"]["hex"].as_str().unwrap()).unwrap();
    assert!(color::contrast_ratio(expected.color, text) >= 4.5);
}

pub async fn silence_pauses_ads_and_unknown_items_show_the_fallback(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let cover = s
        .fake
        .add_image("c.png", cover_png(10, 200, 30), "image/png");
    let user = connected_user(&s, "quiet", "rt-quiet", Scenario::NothingPlaying).await;
    s.server
        .patch(
            "/settings/me",
            Some(&user.access_token),
            json!({"default_overlay_color": "#123456"}),
        )
        .await
        .assert_status(200);
    let cases = [
        (Scenario::NothingPlaying, false),
        (Scenario::Ad, false),
        (Scenario::UnknownType, false),
        (
            Scenario::Paused(FakeTrack {
                cover_url: Some(cover.clone()),
                ..FakeTrack::default()
            }),
            true,
        ),
    ];
    for (scenario, shows_track) in cases {
        s.fake.set_scenario("rt-quiet", scenario.clone());
        // Wait for the hub to see the new scenario.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let infos = s.server.get(&format!("/infos/{}", user.id), None).await;
        assert_eq!(hex(&infos.body), "#123456", "{scenario:?}");
        assert_eq!(infos.body["palette"], Value::Null, "{scenario:?}");
        if shows_track {
            assert_eq!(infos.body["track"]["is_playing"], false);
            assert_eq!(infos.body["track"]["name"], "Fake Song");
        } else {
            assert_eq!(
                infos.body["track"],
                json!({"id": null, "name": "No music playing", "is_playing": false}),
                "{scenario:?}"
            );
        }
    }
}

pub async fn episodes_use_the_episode_or_show_image(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let episode_png = cover_png(30, 30, 220);
    let show_png = cover_png(230, 200, 20);
    let episode_image = s
        .fake
        .add_image("episode.png", episode_png.clone(), "image/png");
    let show_image = s.fake.add_image("show.png", show_png.clone(), "image/png");
    let with_own = Scenario::Episode(FakeEpisode {
        image_url: Some(episode_image),
        show_image_url: Some(show_image.clone()),
        ..FakeEpisode::default()
    });
    let user = connected_user(&s, "podcaster", "rt-pod", with_own).await;
    let infos = s.server.get(&format!("/infos/{}", user.id), None).await;
    assert_eq!(
        hex(&infos.body),
        color::analyze(&episode_png).unwrap().color.hex()
    );
    assert_eq!(infos.body["track"]["name"], "Fake Episode");
    assert_eq!(infos.body["track"]["album"], "Fake Show");
    s.fake.set_scenario(
        "rt-pod",
        Scenario::Episode(FakeEpisode {
            image_url: None,
            show_image_url: Some(show_image),
            id: "another-episode".into(),
            ..FakeEpisode::default()
        }),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let infos = s.server.get(&format!("/infos/{}", user.id), None).await;
    assert_eq!(
        hex(&infos.body),
        color::analyze(&show_png).unwrap().color.hex()
    );
}

pub async fn many_viewers_share_one_poll_and_idle_users_cost_nothing(h: &Harness) {
    let s = setup(h, "1", &[]).await;
    let cover = s
        .fake
        .add_image("shared.png", cover_png(90, 10, 160), "image/png");
    let watched = connected_user(&s, "popular", "rt-popular", playing(Some(cover))).await;
    connected_user(&s, "ignored", "rt-ignored", playing(None)).await;
    let path = format!("/color/{}", watched.id);
    let started = Instant::now();
    let viewers = (0..50).map(|_| {
        let server = &s.server;
        let path = path.clone();
        async move {
            while started.elapsed() < Duration::from_millis(3200) {
                server.get(&path, None).await.assert_status(200);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    futures_util::future::join_all(viewers).await;
    let calls = s.fake.currently_playing_calls_for("rt-popular");
    assert!(
        (1..=4).contains(&calls),
        "{calls} currently-playing calls in 3.2 s at 1 s"
    );
    assert_eq!(s.fake.currently_playing_calls_for("rt-ignored"), 0);
}

pub async fn rate_limits_are_honoured(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let user = connected_user(
        &s,
        "limited",
        "rt-limited",
        Scenario::RateLimited {
            retry_after_secs: 7200,
        },
    )
    .await;
    let path = format!("/color/{}", user.id);
    for _ in 0..10 {
        let reply = s.server.get(&path, None).await;
        reply.assert_status(200);
        assert_eq!(hex(&reply.body), "#25d865");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(
        s.fake.currently_playing_calls_for("rt-limited"),
        1,
        "no poll before Retry-After"
    );
}

pub async fn failures_back_off_and_fall_back(h: &Harness) {
    let s = setup(h, "0.2", &[("SPOTIFY_TIMEOUT", "0.5")]).await;
    let user = connected_user(&s, "flaky", "rt-flaky", Scenario::ServerError).await;
    let path = format!("/color/{}", user.id);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(hex(&s.server.get(&path, None).await.body), "#25d865");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = s.fake.currently_playing_calls_for("rt-flaky");
    // Without backoff that would be ~15 polls; with it 0.4, 0.8, 1.6 s apart: at most 5.
    assert!((1..=5).contains(&calls), "{calls} calls");
    // A slow Spotify answers the fallback once the client's timeout passes.
    let slow = connected_user(
        &s,
        "slowpoke",
        "rt-slow",
        Scenario::slow(Duration::from_secs(5), playing(None)),
    )
    .await;
    let asked = Instant::now();
    let reply = s.server.get(&format!("/color/{}", slow.id), None).await;
    assert_eq!(hex(&reply.body), "#25d865");
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "the request did not wait for the slow call"
    );
}

pub async fn incomplete_covers_show_the_fallback_color(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    // A JPEG cut inside its scan, as after an interrupted download: libjpeg-turbo fills the
    // rest with grey and only warns, so the extractor refuses it as any undecodable cover.
    let mut jpeg = Vec::new();
    image::RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb([200, (x * 3) as u8, (y * 3) as u8])
    })
    .write_to(
        &mut std::io::Cursor::new(&mut jpeg),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    let cut = jpeg[..jpeg.len() / 2].to_vec();
    assert_eq!(color::analyze(&cut), Err(color::ColorError::Incomplete));
    let cover = s.fake.add_image("cut.jpg", cut, "image/jpeg");
    let user = connected_user(&s, "cut-cover", "rt-cut", playing(Some(cover.clone()))).await;
    let infos = s.server.get(&format!("/infos/{}", user.id), None).await;
    infos.assert_status(200);
    assert_eq!(hex(&infos.body), "#25d865");
    assert_eq!(infos.body["palette"], Value::Null);
    assert_eq!(infos.body["track"]["is_playing"], true);
    assert_eq!(infos.body["track"]["image_url"], cover.as_str());
    assert_eq!(s.fake.calls(Endpoint::Image), 1);
}

pub async fn revoked_refresh_tokens_disconnect_the_user(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    s.fake.revoke_refresh_token("rt-revoked");
    let user = connected_user(&s, "revoked", "rt-revoked", playing(None)).await;
    let reply = s.server.get(&format!("/color/{}", user.id), None).await;
    assert_eq!(hex(&reply.body), "#25d865");
    // Cleared after a short grace (another server may be storing a successor).
    eventually(Duration::from_secs(10), "disconnected", || async {
        s.server
            .get("/spotify/auth/status", Some(&user.access_token))
            .await
            .body
            == json!({"authenticated": false})
    })
    .await;
    assert_eq!(stored_refresh_token(&s.server, &user.id).await, None);
    assert_eq!(s.fake.currently_playing_calls_for("rt-revoked"), 0);
}

pub async fn expired_access_tokens_are_renewed(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let png = cover_png(20, 180, 90);
    let cover = s.fake.add_image("green.png", png.clone(), "image/png");
    let user = connected_user(&s, "renewer", "rt-renew", playing(Some(cover))).await;
    let path = format!("/color/{}", user.id);
    let expected = color::analyze(&png).unwrap().color.hex();
    assert_eq!(hex(&s.server.get(&path, None).await.body), expected);
    let tokens_before = s.fake.calls(Endpoint::Token);
    s.fake.expire_access_tokens("rt-renew");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(hex(&s.server.get(&path, None).await.body), expected);
    assert!(
        s.fake.calls(Endpoint::Token) > tokens_before,
        "a new access token was fetched"
    );
}

/// The refresh tokens the server sent, in order.
fn refresh_tokens_sent(fake: &FakeSpotify) -> Vec<String> {
    fake.token_requests()
        .iter()
        .filter(|r| r.field("grant_type") == Some("refresh_token"))
        .filter_map(|r| r.field("refresh_token").map(str::to_owned))
        .collect()
}

/// Spotify rotates the refresh token on every refresh, each working once, and access tokens
/// live 61 s (so every poll refreshes); then an access token dies early (a `401`, renewed at
/// once). The user stays connected through every rotation, no dead token is ever sent, and
/// the database always ends up with the newest one.
pub async fn rotated_refresh_tokens_keep_the_user_connected(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let png = cover_png(60, 140, 220);
    let expected = color::analyze(&png).unwrap().color.hex();
    let cover = s.fake.add_image("rot.png", png, "image/png");
    s.fake.rotate_refresh_tokens("rt-rot");
    s.fake
        .set_access_token_lifetime("rt-rot", Duration::from_secs(61));
    let user = connected_user(&s, "rotator", "rt-rot", playing(Some(cover))).await;
    let path = format!("/color/{}", user.id);
    let started = Instant::now();
    let mut expired_once = false;
    while started.elapsed() < Duration::from_secs(4) {
        s.server.get(&path, None).await.assert_status(200);
        if !expired_once && started.elapsed() > Duration::from_secs(2) {
            s.fake.expire_access_tokens("rt-rot");
            expired_once = true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent = refresh_tokens_sent(&s.fake);
    assert!(sent.len() >= 3, "only {} refreshes: {sent:?}", sent.len());
    let mut unique = sent.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        sent.len(),
        "a used refresh token was sent again: {sent:?}"
    );
    eventually(
        Duration::from_secs(5),
        "the newest token stored",
        || async {
            stored_refresh_token(&s.server, &user.id).await == s.fake.latest_refresh_token("rt-rot")
        },
    )
    .await;
    assert_eq!(
        s.server
            .get("/spotify/auth/status", Some(&user.access_token))
            .await
            .body,
        json!({"authenticated": true})
    );
    assert_eq!(hex(&s.server.get(&path, None).await.body), expected);
}

/// Runs `sql` (one statement or several) on the database `url` names.
async fn run_sql(url: &str, sql: &str) {
    use sqlx::Connection;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    } else if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    } else {
        let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
}

/// SQL that makes every write of a stored refresh token fail, and SQL that undoes it.
fn refuse_token_writes(url: &str) -> (&'static str, &'static str) {
    if url.starts_with("sqlite:") {
        (
            "CREATE TRIGGER refuse_token_writes BEFORE UPDATE ON api_spotify_tokens \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
            "DROP TRIGGER refuse_token_writes",
        )
    } else if url.starts_with("postgres") {
        (
            "CREATE FUNCTION refuse_token_writes() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'refused'; END $$; \
             CREATE TRIGGER refuse_token_writes BEFORE UPDATE ON api_spotify_tokens \
             FOR EACH ROW EXECUTE FUNCTION refuse_token_writes()",
            "DROP TRIGGER refuse_token_writes ON api_spotify_tokens; \
             DROP FUNCTION refuse_token_writes()",
        )
    } else {
        (
            "CREATE TRIGGER refuse_token_writes BEFORE UPDATE ON api_spotify_tokens \
             FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused'",
            "DROP TRIGGER refuse_token_writes",
        )
    }
}

/// Rotations while the database cannot store them: the newest token is used from memory (no
/// dead one is ever sent), and stored as soon as the database takes writes again.
pub async fn rotations_survive_a_database_that_cannot_store_them(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let png = cover_png(120, 30, 200);
    let expected = color::analyze(&png).unwrap().color.hex();
    let cover = s.fake.add_image("outage.png", png, "image/png");
    s.fake.rotate_refresh_tokens("rt-outage");
    s.fake
        .set_access_token_lifetime("rt-outage", Duration::from_secs(61));
    let user = connected_user(&s, "outage", "rt-outage", playing(Some(cover))).await;
    let path = format!("/color/{}", user.id);
    eventually(Duration::from_secs(5), "the cover", || async {
        hex(&s.server.get(&path, None).await.body) == expected
    })
    .await;
    let database_url = s.server.app.config().database_url.expose().to_owned();
    let (refuse, allow) = refuse_token_writes(&database_url);
    run_sql(&database_url, refuse).await;
    let stored_before = stored_refresh_token(&s.server, &user.id).await;
    let refreshes_before = refresh_tokens_sent(&s.fake).len();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(hex(&s.server.get(&path, None).await.body), expected);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        refresh_tokens_sent(&s.fake).len() >= refreshes_before + 2,
        "the hub kept rotating"
    );
    assert_eq!(
        stored_refresh_token(&s.server, &user.id).await,
        stored_before,
        "nothing could be stored"
    );
    run_sql(&database_url, allow).await;
    eventually(
        Duration::from_secs(5),
        "the newest token stored",
        || async {
            stored_refresh_token(&s.server, &user.id).await
                == s.fake.latest_refresh_token("rt-outage")
        },
    )
    .await;
    let sent = refresh_tokens_sent(&s.fake);
    let mut unique = sent.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        sent.len(),
        "a used refresh token was sent again: {sent:?}"
    );
    assert_eq!(hex(&s.server.get(&path, None).await.body), expected);
}

/// A newer refresh token stored behind the hub's back (a callback on another server) and the
/// old one refused: the newer one is used, never cleared.
pub async fn a_refused_old_token_never_clears_a_newer_one(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let png = cover_png(250, 250, 20);
    let cover = s.fake.add_image("new.png", png.clone(), "image/png");
    let user = connected_user(&s, "reconnected", "rt-old", Scenario::NothingPlaying).await;
    let path = format!("/color/{}", user.id);
    s.server.get(&path, None).await.assert_status(200);
    // Another server completes a new connection: the database holds a newer token.
    s.fake.set_scenario("rt-new", playing(Some(cover)));
    let patch = melodyhue_core::model::SpotifyCredentialsPatch {
        refresh_token_encrypted: Some(Some(SecretBox::new(TEST_ENCRYPTION_KEY).encrypt("rt-new"))),
        ..melodyhue_core::model::SpotifyCredentialsPatch::default()
    };
    s.server
        .app
        .store()
        .update_spotify_credentials(&user.id, &patch, s.server.app.now())
        .await
        .unwrap();
    // The old authorization dies at Spotify, and so does its access token.
    s.fake.revoke_refresh_token("rt-old");
    s.fake.expire_access_tokens("rt-old");
    let expected = color::analyze(&png).unwrap().color.hex();
    eventually(
        Duration::from_secs(10),
        "the new account playing",
        || async { hex(&s.server.get(&path, None).await.body) == expected },
    )
    .await;
    assert_eq!(
        stored_refresh_token(&s.server, &user.id).await.as_deref(),
        Some("rt-new")
    );
    assert_eq!(
        s.server
            .get("/spotify/auth/status", Some(&user.access_token))
            .await
            .body,
        json!({"authenticated": true})
    );
}

/// A callback stores a new connection while the hub is polling the old one with rotating
/// tokens: the callback's token wins, and the user plays from the new account.
pub async fn a_callback_racing_with_the_poller_wins(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let png = cover_png(10, 90, 30);
    let cover = s.fake.add_image("race.png", png.clone(), "image/png");
    let user = user_with_app(&s, "racer").await;
    s.fake.rotate_refresh_tokens("rt-first");
    s.fake
        .set_access_token_lifetime("rt-first", Duration::from_secs(61));
    s.fake.approve_as("rt-first");
    let redirect = authorize(&s.server, &user, FRONTEND_CALLBACK).await;
    let token = Some(user.access_token.as_str());
    s.server
        .get(&format!("/spotify/callback?code={}", redirect.code), token)
        .await
        .assert_status(200);
    let path = format!("/color/{}", user.id);
    // The hub refreshes (and rotates) on every poll; meanwhile the user connects another
    // account, its callback landing between polls or during one.
    s.fake.set_scenario("rt-second", playing(Some(cover)));
    s.fake.approve_as("rt-second");
    for _ in 0..5 {
        s.server.get(&path, None).await.assert_status(200);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let redirect = authorize(&s.server, &user, FRONTEND_CALLBACK).await;
    let callback_path = format!("/spotify/callback?code={}", redirect.code);
    let (callback, _) = tokio::join!(
        s.server.get(&callback_path, token),
        s.server.get(&path, None),
    );
    callback.assert_status(200);
    let expected = color::analyze(&png).unwrap().color.hex();
    eventually(
        Duration::from_secs(10),
        "the second account playing",
        || async { hex(&s.server.get(&path, None).await.body) == expected },
    )
    .await;
    assert_eq!(
        stored_refresh_token(&s.server, &user.id).await,
        s.fake.latest_refresh_token("rt-second")
    );
}

/// Two servers on one database poll the same user, Spotify rotating the refresh token at
/// every refresh: neither ever disconnects the user, and both keep showing the cover.
pub async fn two_servers_share_a_rotating_connection(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let png = cover_png(200, 100, 0);
    let expected = color::analyze(&png).unwrap().color.hex();
    let cover = s.fake.add_image("two.png", png, "image/png");
    s.fake.rotate_refresh_tokens("rt-shared");
    s.fake
        .set_access_token_lifetime("rt-shared", Duration::from_secs(61));
    let user = connected_user(&s, "shared", "rt-shared", playing(Some(cover))).await;
    let url = s.fake.url();
    let other = second_node(
        h,
        &s.server,
        &[
            ("SPOTIFY_ACCOUNTS_URL", url.as_str()),
            ("SPOTIFY_API_URL", url.as_str()),
            ("SPOTIFY_IMAGE_HOSTS", "http://127.0.0.1"),
            ("SPOTIFY_POLLING_INTERVAL", "0.2"),
        ],
    )
    .await;
    let path = format!("/color/{}", user.id);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let (a, b) = tokio::join!(s.server.get(&path, None), other.get(&path, None));
        a.assert_status(200);
        b.assert_status(200);
        assert!(
            stored_refresh_token(&s.server, &user.id).await.is_some(),
            "the user was disconnected"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for node in [&s.server, &other] {
        eventually(
            Duration::from_secs(10),
            "the cover on both servers",
            || async { hex(&node.get(&path, None).await.body) == expected },
        )
        .await;
    }
    eventually(
        Duration::from_secs(5),
        "the newest token stored",
        || async {
            stored_refresh_token(&s.server, &user.id).await
                == s.fake.latest_refresh_token("rt-shared")
        },
    )
    .await;
}

pub async fn covers_are_fetched_once_for_all_users(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let cover = s
        .fake
        .add_image("hit.png", cover_png(250, 120, 0), "image/png");
    let a = connected_user(&s, "fan-a", "rt-a", playing(Some(cover.clone()))).await;
    let b = connected_user(&s, "fan-b", "rt-b", playing(Some(cover))).await;
    let (path_a, path_b) = (format!("/color/{}", a.id), format!("/color/{}", b.id));
    for _ in 0..5 {
        let (ra, rb) = tokio::join!(s.server.get(&path_a, None), s.server.get(&path_b, None));
        assert_eq!(hex(&ra.body), hex(&rb.body));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(s.fake.calls(Endpoint::Image), 1);
}

pub async fn metrics_count_spotify_calls_and_cover_cache(h: &Harness) {
    let s = setup(h, "0.2", &[("METRICS", "true")]).await;
    let cover = s
        .fake
        .add_image("m.png", cover_png(20, 90, 200), "image/png");
    let alice = connected_user(&s, "alice", "rt-alice", playing(Some(cover.clone()))).await;
    let bob = connected_user(&s, "bob", "rt-bob", playing(Some(cover))).await;
    let limited = connected_user(
        &s,
        "limited",
        "rt-limited",
        Scenario::RateLimited {
            retry_after_secs: 3600,
        },
    )
    .await;
    for user in [&alice, &bob, &limited] {
        s.server
            .get(&format!("/color/{}", user.id), None)
            .await
            .assert_status(200);
    }
    let response = s
        .server
        .http
        .get(s.server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let count = |series: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("missing {series} in:\n{text}"))
    };
    assert!(count(r#"melodyhue_spotify_calls_total{kind="token_refresh",outcome="ok"}"#) >= 3);
    assert!(count(r#"melodyhue_spotify_calls_total{kind="currently_playing",outcome="ok"}"#) >= 2);
    assert_eq!(
        count(r#"melodyhue_spotify_calls_total{kind="currently_playing",outcome="rate_limited"}"#),
        1
    );
    // One cover for two users: downloaded once, then a cache hit.
    assert_eq!(
        count(r#"melodyhue_spotify_calls_total{kind="cover",outcome="ok"}"#),
        1
    );
    assert_eq!(
        count(r#"melodyhue_cover_cache_lookups_total{result="miss"}"#),
        1
    );
    assert!(count(r#"melodyhue_cover_cache_lookups_total{result="hit"}"#) >= 1);
    assert_eq!(count("melodyhue_watched_users"), 3);
}

pub async fn covers_only_come_from_allowed_hosts(h: &Harness) {
    let fake = FakeSpotify::start().await.unwrap();
    fake.add_app(CLIENT_ID, CLIENT_SECRET);
    let url = fake.url();
    // Default image hosts: Spotify's, https only. The fake's http cover is refused.
    let server = TestServer::start_with(
        h,
        &[
            ("SPOTIFY_ACCOUNTS_URL", url.as_str()),
            ("SPOTIFY_API_URL", url.as_str()),
            ("SPOTIFY_POLLING_INTERVAL", "0.2"),
        ],
    )
    .await;
    let s = Setup { fake, server };
    let cover = s
        .fake
        .add_image("blocked.png", cover_png(255, 0, 0), "image/png");
    let user = connected_user(&s, "blocked", "rt-blocked", playing(Some(cover))).await;
    let infos = s.server.get(&format!("/infos/{}", user.id), None).await;
    assert_eq!(hex(&infos.body), "#25d865");
    assert_eq!(infos.body["track"]["is_playing"], true);
    assert_eq!(s.fake.calls(Endpoint::Image), 0);
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

pub async fn websocket_needs_a_token(h: &Harness) {
    let s = setup(h, "3", &[]).await;
    for query in ["", "?token=garbage"] {
        let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(&s.server, query))
            .await
            .unwrap();
        assert_eq!(close_code(&mut socket).await, 4401, "{query:?}");
    }
    let plain = s.server.get("/ws", None).await;
    plain.assert_status(400);
}

/// A client that closes (a tab going away: 1001, or a normal 1000) gets the server's close frame
/// back, as RFC 6455 section 5.5.1 requires, instead of a dropped connection (1006).
pub async fn websocket_answers_a_client_close(h: &Harness) {
    let s = setup(h, "3", &[]).await;
    let user = connected_user(&s, "leaver", "rt-close", Scenario::NothingPlaying).await;
    for code in [1000, 1001] {
        let query = format!("?token={}", user.access_token);
        let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(&s.server, &query))
            .await
            .unwrap();
        assert_eq!(next_json(&mut socket).await["type"], "now_playing");
        socket
            .send(Message::Close(Some(tungstenite::protocol::CloseFrame {
                code: code.into(),
                reason: "bye".into(),
            })))
            .await
            .unwrap();
        assert_eq!(close_code(&mut socket).await, code);
    }
}

/// A close the server starts waits for the client's answering close frame before the
/// connection ends (RFC 6455, section 5.5.1), so a client that answers a moment later is not
/// reset. Seen with a raw TCP client, which answers only when told to (WebSocket libraries
/// answer at once).
pub async fn websocket_waits_for_the_answer_to_its_close(h: &Harness) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(h).await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    // No token: the server closes at once with 4401.
    let upgrade = format!(
        "GET /ws HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(upgrade.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    // The 101 response, then the unmasked close frame: 0x88, length, code 4401, reason.
    let close_frame = loop {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("the server answers within 10 s")
            .unwrap();
        assert_ne!(read, 0, "the connection ended before the close frame");
        received.extend_from_slice(&buffer[..read]);
        let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&received[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let frame = &received[end + 4..];
        if frame.len() >= 2 && frame.len() >= 2 + usize::from(frame[1] & 0x7f) {
            break frame.to_vec();
        }
    };
    assert_eq!(close_frame[0], 0x88, "a final close frame");
    assert_eq!(u16::from_be_bytes([close_frame[2], close_frame[3]]), 4401);
    // The client takes its time: the server keeps the connection open meanwhile.
    let early = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buffer)).await;
    assert!(
        early.is_err(),
        "the server ended the connection before the client answered its close: {early:?}"
    );
    // The answer (masked, as every client frame; code 4401 echoed), then a clean end.
    let mask = [1u8, 2, 3, 4];
    let payload = 4401u16.to_be_bytes();
    let mut answer = vec![0x88, 0x80 | 2];
    answer.extend_from_slice(&mask);
    answer.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    stream.write_all(&answer).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
        .await
        .expect("the server ends the connection after the handshake");
    assert!(
        matches!(end, Ok(0)),
        "a clean end of the connection, not a reset: {end:?}"
    );
}

pub async fn websocket_streams_now_playing_changes(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let png = cover_png(240, 30, 200);
    let cover = s.fake.add_image("ws.png", png.clone(), "image/png");
    let user = connected_user(&s, "streamer", "rt-ws", Scenario::NothingPlaying).await;
    // Token in the Authorization header here; the query parameter is used below.
    let mut request = ws_url(&s.server, "").into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", user.access_token).parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let first = next_json(&mut socket).await;
    assert_eq!(first["type"], "now_playing");
    assert_eq!(first["color"]["hex"], "#25d865");
    assert_eq!(first["track"]["name"], "No music playing");
    s.fake.set_scenario("rt-ws", playing(Some(cover)));
    let second = next_json(&mut socket).await;
    assert_eq!(second["type"], "now_playing");
    assert_eq!(
        second["color"]["hex"],
        color::analyze(&png).unwrap().color.hex()
    );
    assert_eq!(second["track"]["name"], "Fake Song");
    s.fake
        .set_scenario("rt-ws", Scenario::Paused(FakeTrack::default()));
    let third = next_json(&mut socket).await;
    assert_eq!(third["track"]["is_playing"], false);
    assert_eq!(third["color"]["hex"], "#25d865");
    socket.send(Message::Close(None)).await.unwrap();
    // Another client, authenticated by query parameter, gets the current state at once.
    let (mut other, _) = tokio_tungstenite::connect_async(ws_url(
        &s.server,
        &format!("?access_token={}", user.access_token),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut other).await["type"], "now_playing");
}

/// The next message, which must be a `now_playing` one.
async fn next_now_playing(
    socket: &mut (impl StreamExt<Item = Result<Message, tungstenite::Error>> + Unpin),
    what: &str,
) -> Value {
    let message = next_json(socket).await;
    assert_eq!(message["type"], "now_playing", "{what}: {message}");
    message
}

/// The next text message, or `None` when none comes within `wait`.
async fn message_within(
    socket: &mut (impl StreamExt<Item = Result<Message, tungstenite::Error>> + Unpin),
    wait: Duration,
) -> Option<Value> {
    tokio::time::timeout(wait, next_json(socket)).await.ok()
}

/// Any change of what is shown is a message: from one local file (no id, no cover) to the
/// next, another album, a null duration, the play state, the fallback color; the position
/// alone is not.
pub async fn websocket_sees_every_change_of_what_is_shown(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let first_local = FakeTrack::local_file("Song One", "Garage Band", "Demo Tape");
    let user = connected_user(
        &s,
        "local",
        "rt-local",
        Scenario::Playing(first_local.clone()),
    )
    .await;
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(
        &s.server,
        &format!("?token={}", user.access_token),
    ))
    .await
    .unwrap();
    let first = next_now_playing(&mut socket, "the first local file").await;
    assert_eq!(first["track"]["name"], "Song One");
    assert_eq!(first["track"]["id"], Value::Null);
    assert_eq!(first["track"]["image_url"], Value::Null);

    let changes = [
        (
            "the next local file",
            FakeTrack::local_file("Song Two", "Garage Band", "Demo Tape"),
        ),
        (
            "the same title from another album",
            FakeTrack::local_file("Song Two", "Garage Band", "Live Tape"),
        ),
        (
            "the duration becomes unknown",
            FakeTrack {
                duration_ms: None,
                ..FakeTrack::local_file("Song Two", "Garage Band", "Live Tape")
            },
        ),
    ];
    for (what, track) in changes {
        s.fake
            .set_scenario("rt-local", Scenario::Playing(track.clone()));
        let message = next_now_playing(&mut socket, what).await;
        assert_eq!(message["track"]["name"], track.name.as_str(), "{what}");
        assert_eq!(message["track"]["album"], track.album.as_str(), "{what}");
        assert_eq!(
            message["track"]["duration_ms"],
            json!(track.duration_ms),
            "{what}"
        );
    }
    // Only the position moves: nothing to say.
    s.fake.set_scenario(
        "rt-local",
        Scenario::Playing(FakeTrack {
            duration_ms: None,
            progress_ms: 100_000,
            ..FakeTrack::local_file("Song Two", "Garage Band", "Live Tape")
        }),
    );
    assert_eq!(
        message_within(&mut socket, Duration::from_millis(1200)).await,
        None
    );
    s.fake.set_scenario(
        "rt-local",
        Scenario::Paused(FakeTrack::local_file(
            "Song Two",
            "Garage Band",
            "Live Tape",
        )),
    );
    assert_eq!(
        next_now_playing(&mut socket, "paused").await["track"]["is_playing"],
        false
    );
    // While nothing plays, the fallback color is what is shown.
    s.fake.set_scenario("rt-local", Scenario::NothingPlaying);
    assert_eq!(
        next_now_playing(&mut socket, "silence").await["track"]["name"],
        "No music playing"
    );
    s.server
        .patch(
            "/settings/me",
            Some(&user.access_token),
            json!({"default_overlay_color": "#abcdef"}),
        )
        .await
        .assert_status(200);
    assert_eq!(
        next_now_playing(&mut socket, "a new fallback color").await["color"]["hex"],
        "#abcdef"
    );
}

/// `/infos` shows `null` where Spotify sent nothing: a local file's id and cover, an unknown
/// duration, an item without artists.
pub async fn infos_keep_absent_values_null(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let user = connected_user(
        &s,
        "nulls",
        "rt-nulls",
        Scenario::Playing(FakeTrack {
            duration_ms: None,
            artists: vec![],
            ..FakeTrack::local_file("Untitled", "", "Voice Memos")
        }),
    )
    .await;
    let infos = s.server.get(&format!("/infos/{}", user.id), None).await;
    infos.assert_status(200);
    let track = &infos.body["track"];
    assert_eq!(track["id"], Value::Null);
    assert_eq!(track["name"], "Untitled");
    assert_eq!(track["artist"], Value::Null);
    assert_eq!(track["album"], "Voice Memos");
    assert_eq!(track["duration_ms"], Value::Null);
    assert_eq!(track["image_url"], Value::Null);
    assert!(track["progress_ms"].as_u64().unwrap() >= 42_000);
    assert_eq!(track["is_playing"], true);
}

/// Progress is extrapolated between polls but never past a known duration; an unknown
/// duration is `null`, never `0`.
pub async fn progress_stops_at_the_duration(h: &Harness) {
    // Polls far apart, so the second answer is extrapolated.
    let s = setup(h, "30", &[]).await;
    let user = connected_user(
        &s,
        "ending",
        "rt-ending",
        Scenario::Playing(FakeTrack {
            duration_ms: Some(212_000),
            progress_ms: 211_700,
            ..FakeTrack::default()
        }),
    )
    .await;
    let path = format!("/infos/{}", user.id);
    let first = s.server.get(&path, None).await;
    assert!(first.body["track"]["progress_ms"].as_u64().unwrap() >= 211_700);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = s.server.get(&path, None).await;
    assert_eq!(later.body["track"]["progress_ms"], 212_000);
    assert_eq!(later.body["track"]["duration_ms"], 212_000);
    assert_eq!(s.fake.currently_playing_calls_for("rt-ending"), 1);
}

/// `Retry-After` as an HTTP-date stops the polls until that date and no longer; a date in the
/// past means poll again at once (at the polling interval).
pub async fn rate_limits_with_an_http_date_are_honoured(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let at = |offset: i64| {
        let now = std::time::SystemTime::now();
        let delta = Duration::from_secs(offset.unsigned_abs());
        if offset >= 0 {
            now + delta
        } else {
            now - delta
        }
    };
    let users = [
        ("rt-later", at(7200)),
        ("rt-soon", at(2)),
        ("rt-past", at(-86_400)),
    ];
    let mut ids = Vec::new();
    for (refresh_token, until) in users {
        let user = connected_user(
            &s,
            refresh_token.trim_start_matches("rt-"),
            refresh_token,
            Scenario::rate_limited_until(until),
        )
        .await;
        ids.push(user.id);
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(3500) {
        for id in &ids {
            let reply = s.server.get(&format!("/color/{id}"), None).await;
            assert_eq!(hex(&reply.body), "#25d865");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let calls = |refresh_token| s.fake.currently_playing_calls_for(refresh_token);
    assert_eq!(calls("rt-later"), 1, "no poll before the date");
    // At most 2 s, not the 30 s assumed without a readable Retry-After.
    assert!(calls("rt-soon") >= 2, "polled {} times", calls("rt-soon"));
    // In the past: one interval.
    assert!(calls("rt-past") >= 5, "polled {} times", calls("rt-past"));
}

/// A Spotify that accepts connections and never answers: every viewer is answered within a
/// second (the fallback), the poll ends in the background, and once the failure is known a
/// feed started again answers without waiting at all.
pub async fn a_spotify_that_never_answers_never_holds_viewers(h: &Harness) {
    let s = setup(h, "0.2", &[("SPOTIFY_TIMEOUT", "5")]).await;
    let user = connected_user(&s, "hung", "rt-hung", playing(None)).await;
    s.fake.stop_answering();
    let path = format!("/color/{}", user.id);
    let timed = |server: &TestServer| {
        let url = server.url(&path);
        let http = server.http.clone();
        async move {
            let started = Instant::now();
            let response = http.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            (started.elapsed(), hex(&body))
        }
    };
    // The first viewers, all at once.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(10));
    let viewers = (0..10).map(|_| {
        let barrier = std::sync::Arc::clone(&barrier);
        let viewer = timed(&s.server);
        async move {
            barrier.wait().await;
            viewer.await
        }
    });
    for (waited, color) in futures_util::future::join_all(viewers).await {
        assert_eq!(color, "#25d865");
        assert!(
            waited < Duration::from_millis(2500),
            "a viewer waited {waited:?}"
        );
    }
    // While the poll still hangs, later viewers do not wait at all.
    let (waited, _) = timed(&s.server).await;
    assert!(waited < Duration::from_millis(700), "waited {waited:?}");
    // Nobody watches for the watch window; the poll times out meanwhile and the feed stops.
    eventually(Duration::from_secs(45), "the feed stopped", || async {
        s.server.app.now_playing().stats().watched_users == 0
    })
    .await;
    let (waited, color) = timed(&s.server).await;
    assert_eq!(color, "#25d865");
    assert!(
        waited < Duration::from_millis(700),
        "a known failure made the viewer wait {waited:?}"
    );
}

pub async fn banning_kicks_open_websockets(h: &Harness) {
    let s = setup(h, "3", &[]).await;
    let user = s.server.register("kicked").await;
    let admin = s.server.register("kicker").await;
    s.server
        .app
        .store()
        .set_role(
            &admin.id,
            melodyhue_core::model::Role::Admin,
            s.server.app.now(),
        )
        .await
        .unwrap();
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(
        &s.server,
        &format!("?token={}", user.access_token),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "now_playing");
    s.server
        .post(
            &format!("/modo/users/{}/ban", user.id),
            Some(&admin.access_token),
            json!({"reason": "testing the kick"}),
        )
        .await
        .assert_status(200);
    assert_eq!(
        next_json(&mut socket).await,
        json!({"type": "force_logout", "reason": "banned"})
    );
    assert_eq!(close_code(&mut socket).await, 4401);
    // A banned user cannot open a new socket either.
    let (mut again, _) = tokio_tungstenite::connect_async(ws_url(
        &s.server,
        &format!("?token={}", user.access_token),
    ))
    .await
    .unwrap();
    assert_eq!(close_code(&mut again).await, 4401);
}
