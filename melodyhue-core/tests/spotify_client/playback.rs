//! The currently-playing endpoint: tracks, episodes, silence, ads, local files, rate limits,
//! and the calls the fake counts.

use super::*;

#[tokio::test]
async fn a_playing_track() {
    let setup = Setup::new().await;
    let cover = setup
        .fake
        .add_image("cover.jpg", vec![1, 2, 3], "image/jpeg");
    let now = setup
        .currently_playing(Scenario::Playing(FakeTrack {
            id: Some("track-1".into()),
            name: "Song".into(),
            artists: vec!["A".into(), "B".into()],
            album: "Album".into(),
            duration_ms: Some(200_000),
            progress_ms: 1_234,
            cover_url: Some(cover.clone()),
        }))
        .await;
    assert_eq!(
        now,
        CurrentlyPlaying {
            currently_playing_type: CurrentlyPlayingType::Track,
            is_playing: true,
            progress_ms: Some(1_234),
            id: Some("track-1".into()),
            uri: Some("spotify:track:track-1".into()),
            name: Some("Song".into()),
            artists: vec!["A".into(), "B".into()],
            album: Some("Album".into()),
            duration_ms: Some(200_000),
            image_url: Some(cover),
        }
    );
}

#[tokio::test]
async fn a_paused_track() {
    let setup = Setup::new().await;
    let now = setup
        .currently_playing(Scenario::Paused(FakeTrack::default()))
        .await;
    assert_eq!(now.currently_playing_type, CurrentlyPlayingType::Track);
    assert!(!now.is_playing);
    assert_eq!(now.name.as_deref(), Some("Fake Song"));
    assert_eq!(now.image_url, None);
}

#[tokio::test]
async fn nothing_playing() {
    let setup = Setup::new().await;
    assert_eq!(
        setup.playback(Scenario::NothingPlaying).await,
        Ok(Playback::Nothing)
    );
    // A user without a scenario plays nothing either.
    setup.fake.add_authorization_code("code", "fresh-rt");
    let grant = setup
        .client
        .exchange_code(&setup.app, "code", REDIRECT_URI)
        .await
        .unwrap();
    assert_eq!(
        setup.client.currently_playing(&grant.access_token).await,
        Ok(Playback::Nothing)
    );
}

#[tokio::test]
async fn an_episode_with_its_own_image() {
    let setup = Setup::new().await;
    let episode_image = setup.fake.add_image("episode.jpg", vec![1], "image/jpeg");
    let show_image = setup.fake.add_image("show.jpg", vec![2], "image/jpeg");
    let now = setup
        .currently_playing(Scenario::Episode(FakeEpisode {
            image_url: Some(episode_image.clone()),
            show_image_url: Some(show_image),
            ..FakeEpisode::default()
        }))
        .await;
    assert_eq!(now.currently_playing_type, CurrentlyPlayingType::Episode);
    assert!(now.is_playing);
    assert_eq!(now.name.as_deref(), Some("Fake Episode"));
    assert_eq!(now.artists, ["Fake Publisher"]);
    assert_eq!(now.album.as_deref(), Some("Fake Show"));
    assert_eq!(now.image_url, Some(episode_image));
}

#[tokio::test]
async fn an_episode_with_only_a_show_image() {
    let setup = Setup::new().await;
    let show_image = setup.fake.add_image("show.jpg", vec![2], "image/jpeg");
    let now = setup
        .currently_playing(Scenario::Episode(FakeEpisode {
            image_url: None,
            show_image_url: Some(show_image.clone()),
            ..FakeEpisode::default()
        }))
        .await;
    assert_eq!(now.currently_playing_type, CurrentlyPlayingType::Episode);
    assert_eq!(now.image_url, Some(show_image));
}

#[tokio::test]
async fn an_ad_and_an_unknown_type() {
    let setup = Setup::new().await;
    let ad = setup.currently_playing(Scenario::Ad).await;
    assert_eq!(ad.currently_playing_type, CurrentlyPlayingType::Ad);
    assert_eq!((ad.name, ad.image_url), (None, None));
    let unknown = setup.currently_playing(Scenario::UnknownType).await;
    assert_eq!(
        unknown.currently_playing_type,
        CurrentlyPlayingType::Unknown
    );
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let setup = Setup::new().await;
    for seconds in [1, 7200] {
        assert_eq!(
            setup
                .playback(Scenario::RateLimited {
                    retry_after_secs: seconds
                })
                .await,
            Err(SpotifyError::RateLimited {
                retry_after: Duration::from_secs(seconds)
            })
        );
    }
}

#[tokio::test]
async fn rate_limits_carry_an_http_date_retry_after() {
    let setup = Setup::new().await;
    let retry_after = |result: Result<Playback, SpotifyError>| match result {
        Err(SpotifyError::RateLimited { retry_after }) => retry_after,
        other => panic!("expected a rate limit, got {other:?}"),
    };
    // An HTTP-date two minutes ahead (whole seconds: a little less than 120 s remain).
    let in_two_minutes = SystemTime::now() + Duration::from_secs(120);
    let wait = retry_after(
        setup
            .playback(Scenario::rate_limited_until(in_two_minutes))
            .await,
    );
    assert!(
        (Duration::from_secs(115)..=Duration::from_secs(120)).contains(&wait),
        "{wait:?}"
    );
    // A date in the past means now.
    let past = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(
        retry_after(setup.playback(Scenario::rate_limited_until(past)).await),
        Duration::ZERO
    );
    // The obsolete RFC 850 and asctime formats are HTTP-dates too.
    for date in ["Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"] {
        let scenario = Scenario::RateLimitedWith {
            retry_after: Some(date.into()),
        };
        assert_eq!(
            retry_after(setup.playback(scenario).await),
            Duration::ZERO,
            "{date}"
        );
    }
    // Absent or unreadable: the default; absurdly long: capped.
    for (header, expected) in [
        (None, DEFAULT_RETRY_AFTER),
        (Some("tomorrow"), DEFAULT_RETRY_AFTER),
        (Some("-1"), DEFAULT_RETRY_AFTER),
        (Some("18446744073709551616"), MAX_RETRY_AFTER),
        (Some("Fri, 31 Dec 9999 23:59:59 GMT"), MAX_RETRY_AFTER),
    ] {
        let scenario = Scenario::RateLimitedWith {
            retry_after: header.map(str::to_owned),
        };
        assert_eq!(
            retry_after(setup.playback(scenario).await),
            expected,
            "{header:?}"
        );
    }
}

#[tokio::test]
async fn a_local_file_has_no_id_cover_or_made_up_values() {
    let setup = Setup::new().await;
    let cover = setup.fake.add_image("never.jpg", vec![1], "image/jpeg");
    let local = FakeTrack {
        cover_url: Some(cover),
        ..FakeTrack::local_file("Song One", "Garage Band", "Demo Tape")
    };
    let now = setup.currently_playing(Scenario::Playing(local)).await;
    assert_eq!(now.id, None);
    assert_eq!(
        now.uri.as_deref(),
        Some("spotify:local:Garage+Band:Demo+Tape:Song+One:212")
    );
    assert_eq!(now.name.as_deref(), Some("Song One"));
    assert_eq!(now.artists, ["Garage Band"]);
    assert_eq!(now.album.as_deref(), Some("Demo Tape"));
    assert_eq!(now.image_url, None, "local files have no album images");

    let without_duration = FakeTrack {
        duration_ms: None,
        ..FakeTrack::default()
    };
    let now = setup
        .currently_playing(Scenario::Playing(without_duration))
        .await;
    assert_eq!(now.duration_ms, None);
    assert_eq!(now.progress_ms, Some(42_000));
}

#[tokio::test]
async fn scenarios_change_while_running_and_calls_are_counted() {
    let setup = Setup::new().await;
    let dave = setup.user("dave-rt", Scenario::NothingPlaying).await;
    let erin = setup.user("erin-rt", Scenario::NothingPlaying).await;
    assert_eq!(
        setup.client.currently_playing(&dave).await,
        Ok(Playback::Nothing)
    );
    setup
        .fake
        .set_scenario("dave-rt", Scenario::Playing(FakeTrack::default()));
    assert!(matches!(
        setup.client.currently_playing(&dave).await,
        Ok(Playback::Item(CurrentlyPlaying {
            is_playing: true,
            ..
        }))
    ));
    setup.client.currently_playing(&erin).await.unwrap();
    assert_eq!(setup.fake.calls(Endpoint::CurrentlyPlaying), 3);
    assert_eq!(setup.fake.calls(Endpoint::Token), 2);
    assert_eq!(setup.fake.currently_playing_calls_for("dave-rt"), 2);
    assert_eq!(setup.fake.currently_playing_calls_for("erin-rt"), 1);
    assert_eq!(setup.fake.currently_playing_calls_for("nobody"), 0);

    setup.fake.reset_counters();
    assert_eq!(setup.fake.calls(Endpoint::CurrentlyPlaying), 0);
    assert_eq!(setup.fake.calls(Endpoint::Token), 0);
    assert_eq!(setup.fake.currently_playing_calls_for("dave-rt"), 0);
    setup.client.currently_playing(&dave).await.unwrap();
    assert_eq!(setup.fake.currently_playing_calls_for("dave-rt"), 1);
}

#[tokio::test]
async fn clones_share_the_work() {
    let setup = Setup::new().await;
    let token = setup
        .user("frank-rt", Scenario::Playing(FakeTrack::default()))
        .await;
    let polls = (0..20).map(|_| {
        let client = setup.client.clone();
        let token = token.clone();
        tokio::spawn(async move { client.currently_playing(&token).await })
    });
    for poll in polls {
        assert!(matches!(poll.await.unwrap(), Ok(Playback::Item(_))));
    }
    assert_eq!(setup.fake.currently_playing_calls_for("frank-rt"), 20);
}
