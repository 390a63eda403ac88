//! Spotify failing: rate limits, errors and a server that never answers, with back-off and the
//! fallback color.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{connected_user, eventually, hex, playing, setup};
use crate::fake_spotify::Scenario;
use crate::suite::{Harness, TestServer};

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
    let late = || s.server.app.now_playing().stats().late_first_answers;
    // Each viewer that waited the full second (one that arrived after the first gave up finds
    // the fallback already there).
    let first_waits = late();
    assert!(
        (1..=10).contains(&first_waits),
        "{first_waits} first answers counted late"
    );
    // While the poll still hangs, later viewers do not wait at all.
    let (waited, _) = timed(&s.server).await;
    assert!(waited < Duration::from_millis(700), "waited {waited:?}");
    assert_eq!(late(), first_waits);
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
    assert_eq!(late(), first_waits);
}
