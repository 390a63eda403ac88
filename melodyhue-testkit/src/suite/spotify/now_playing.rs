//! What `/color` and `/infos` show of what plays: covers and their colors, episodes, silence,
//! absent values, progress, and the one poll and cover fetch all viewers share.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{CLIENT_ID, CLIENT_SECRET, Setup, connected_user, cover_png, hex, playing, setup};
use crate::fake_spotify::{Endpoint, FakeEpisode, FakeSpotify, FakeTrack, Scenario};
use crate::metrics;
use crate::suite::{Harness, TestServer};
use melodyhue_core::color::{self, Rgb};

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

/// A user deletes their account while viewers still ask for them: their Spotify is not called
/// on their behalf again (the watch window would otherwise keep the polls going for 30 s, with
/// the tokens kept in memory).
pub async fn a_deleted_accounts_spotify_is_called_no_more(h: &Harness) {
    let s = setup(h, "0.2", &[]).await;
    let user = connected_user(&s, "leaver", "rt-leaver", playing(None)).await;
    let path = format!("/color/{}", user.id);
    let started = Instant::now();
    while s.fake.currently_playing_calls_for("rt-leaver") < 2 {
        s.server.get(&path, None).await.assert_status(200);
        assert!(started.elapsed() < Duration::from_secs(5), "never polled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.server
        .delete("/users/me", Some(&user.access_token))
        .await
        .assert_status(200);
    // A poll already under way may still finish.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = s.fake.currently_playing_calls_for("rt-leaver");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        s.fake.currently_playing_calls_for("rt-leaver"),
        after,
        "currently-playing calls for a deleted account (interval 0.2 s)"
    );
    s.server.get(&path, None).await.assert_status(404);
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
    let text = metrics::scrape(&s.server.http, &s.server.url("")).await;
    let count = |series: &str| metrics::sample(&text, series);
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
