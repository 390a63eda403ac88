//! `/spotify/*`, the now-playing hub behind `/color` and `/infos`, and `/ws`, against a fake
//! Spotify on loopback.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use super::{Harness, TEST_ENCRYPTION_KEY, TestServer, TestUser};
use crate::color::{self, Rgb};
use crate::secrets::SecretBox;
use crate::testing::fake_spotify::{Endpoint, FakeEpisode, FakeSpotify, FakeTrack, Scenario};

const CLIENT_ID: &str = "test-client-id";
const CLIENT_SECRET: &str = "test-client-secret";

/// A solid-color 64x64 PNG.
fn cover_png(r: u8, g: u8, b: u8) -> Vec<u8> {
    let mut png = Vec::new();
    image::RgbImage::from_pixel(64, 64, image::Rgb([r, g, b]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

struct Setup {
    fake: FakeSpotify,
    server: TestServer,
}

/// A fake Spotify and a server pointed at it, polling every `interval` seconds.
async fn setup(h: &Harness, interval: &str, extra: &[(&str, &str)]) -> Setup {
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
async fn connected_user(
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

fn playing(cover_url: Option<String>) -> Scenario {
    Scenario::Playing(FakeTrack {
        cover_url,
        ..FakeTrack::default()
    })
}

fn hex(reply: &Value) -> String {
    reply["color"]["hex"].as_str().unwrap().to_owned()
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
    assert_eq!(
        default.body["url"],
        format!(
            "{}/authorize?client_id=my%20id&response_type=code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=user-read-currently-playing%20user-read-playback-state&show_dialog=false",
            s.fake.url()
        )
    );
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
            .contains("redirect_uri=http%3A%2F%2Flocalhost%2Fx")
    );
}

pub async fn spotify_callback_connects_and_logout_disconnects(h: &Harness) {
    let s = setup(h, "3", &[]).await;
    let user = s.server.register("callback").await;
    let token = Some(user.access_token.as_str());
    s.server
        .patch(
            "/spotify/credentials",
            token,
            json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
        )
        .await
        .assert_status(200);
    let missing = s.server.get("/spotify/callback", token).await;
    missing.assert_status(400);
    let refused = s.server.get("/spotify/callback?code=nope", token).await;
    refused.assert_status(400);
    assert_eq!(
        s.server.get("/spotify/auth/status", token).await.body,
        json!({"authenticated": false})
    );
    s.fake.add_authorization_code("good-code", "rt-from-code");
    let ok = s
        .server
        .get(
            "/spotify/callback?code=good-code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
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
    let status = s
        .server
        .get("/spotify/auth/status", Some(&user.access_token))
        .await;
    assert_eq!(status.body, json!({"authenticated": false}));
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

pub async fn banning_kicks_open_websockets(h: &Harness) {
    let s = setup(h, "3", &[]).await;
    let user = s.server.register("kicked").await;
    let admin = s.server.register("kicker").await;
    s.server
        .app
        .store()
        .set_role(&admin.id, crate::model::Role::Admin, s.server.app.now())
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
