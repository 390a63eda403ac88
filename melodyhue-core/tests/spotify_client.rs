//! The Spotify client against the fake Spotify, over real loopback sockets.

// Test helpers, like tests, may unwrap: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use melodyhue_core::spotify::{
    AppCredentials, CurrentlyPlaying, CurrentlyPlayingType, DEFAULT_RETRY_AFTER, ImagePolicy,
    MAX_RETRY_AFTER, Playback, SpotifyClient, SpotifyEndpoints, SpotifyError,
};
use melodyhue_testkit::fake_spotify::{Endpoint, FakeEpisode, FakeSpotify, FakeTrack, Scenario};

const REDIRECT_URI: &str = "http://localhost:4200/spotify/callback";
/// Long enough never to fire in these tests unless something hangs.
const GENEROUS: Duration = Duration::from_secs(20);
/// Short client timeout for the tests that expect one.
const SHORT: Duration = Duration::from_millis(300);
/// Far longer than [`SHORT`]: what a slow fake waits.
const FOREVER: Duration = Duration::from_secs(120);

struct Setup {
    fake: FakeSpotify,
    client: SpotifyClient,
    app: AppCredentials,
}

impl Setup {
    async fn new() -> Self {
        let fake = FakeSpotify::start().await.unwrap();
        fake.add_app("client-id", "client-secret");
        let client = client_for(&fake, GENEROUS);
        let app = AppCredentials {
            client_id: "client-id".into(),
            client_secret: "client-secret".into(),
        };
        Self { fake, client, app }
    }

    /// Plays `scenario` for `refresh_token` and returns a fresh access token of it.
    async fn user(&self, refresh_token: &str, scenario: Scenario) -> String {
        self.fake.set_scenario(refresh_token, scenario);
        self.client
            .refresh(&self.app, refresh_token)
            .await
            .unwrap()
            .access_token
    }

    async fn playback(&self, scenario: Scenario) -> Result<Playback, SpotifyError> {
        let access_token = self.user("user-refresh-token", scenario).await;
        self.client.currently_playing(&access_token).await
    }

    async fn currently_playing(&self, scenario: Scenario) -> CurrentlyPlaying {
        match self.playback(scenario).await {
            Ok(Playback::Item(now)) => now,
            other => panic!("expected an item, got {other:?}"),
        }
    }

    fn policy(&self, max_bytes: usize) -> ImagePolicy {
        ImagePolicy {
            allowed_hosts: ImagePolicy::parse_hosts(&self.fake.url()).unwrap(),
            max_bytes,
        }
    }
}

fn client_for(fake: &FakeSpotify, timeout: Duration) -> SpotifyClient {
    SpotifyClient::new(SpotifyEndpoints {
        accounts_url: fake.url(),
        api_url: fake.url(),
        timeout,
    })
    .unwrap()
}

#[test]
fn authorize_url_is_exact() {
    let client = SpotifyClient::new(SpotifyEndpoints::default()).unwrap();
    assert_eq!(
        client.authorize_url("alice-client-id", REDIRECT_URI, "s-1_~."),
        "https://accounts.spotify.com/authorize?client_id=alice-client-id&response_type=code\
         &redirect_uri=http%3A%2F%2Flocalhost%3A4200%2Fspotify%2Fcallback\
         &scope=user-read-currently-playing%20user-read-playback-state&show_dialog=false\
         &state=s-1_~."
    );
    let elsewhere = SpotifyClient::new(SpotifyEndpoints {
        accounts_url: "http://127.0.0.1:9/accounts/".into(),
        ..SpotifyEndpoints::default()
    })
    .unwrap();
    assert_eq!(
        elsewhere.authorize_url(
            "id with spaces&more",
            "https://x.example/cb?a=1&b=é",
            "st/te=1"
        ),
        "http://127.0.0.1:9/accounts/authorize?client_id=id%20with%20spaces%26more\
         &response_type=code&redirect_uri=https%3A%2F%2Fx.example%2Fcb%3Fa%3D1%26b%3D%C3%A9\
         &scope=user-read-currently-playing%20user-read-playback-state&show_dialog=false\
         &state=st%2Fte%3D1"
    );
}

#[test]
fn base_urls_must_be_http() {
    for bad in [
        "",
        "accounts.spotify.com",
        "ftp://accounts.spotify.com",
        "http://",
    ] {
        let result = SpotifyClient::new(SpotifyEndpoints {
            accounts_url: bad.into(),
            ..SpotifyEndpoints::default()
        });
        assert!(
            matches!(result, Err(SpotifyError::Config(_))),
            "{bad:?}: {result:?}"
        );
    }
}

#[tokio::test]
async fn code_exchange_grants_tokens_once() {
    let setup = Setup::new().await;
    setup
        .fake
        .add_authorization_code("good-code", "alice-refresh-token");
    let grant = setup
        .client
        .exchange_code(&setup.app, "good-code", REDIRECT_URI)
        .await
        .unwrap();
    assert_eq!(grant.refresh_token.as_deref(), Some("alice-refresh-token"));
    assert_eq!(grant.expires_in, Duration::from_secs(3600));
    // The access token leads to alice's scenario.
    setup.fake.set_scenario(
        "alice-refresh-token",
        Scenario::Playing(FakeTrack::default()),
    );
    assert!(matches!(
        setup.client.currently_playing(&grant.access_token).await,
        Ok(Playback::Item(_))
    ));
    assert_eq!(
        setup
            .client
            .exchange_code(&setup.app, "good-code", REDIRECT_URI)
            .await,
        Err(SpotifyError::InvalidGrant)
    );
    assert_eq!(setup.fake.calls(Endpoint::Token), 2);
}

#[tokio::test]
async fn code_exchange_refused() {
    let setup = Setup::new().await;
    setup.fake.add_authorization_code("good-code", "alice-rt");
    assert_eq!(
        setup
            .client
            .exchange_code(&setup.app, "unknown-code", REDIRECT_URI)
            .await,
        Err(SpotifyError::InvalidGrant)
    );
    let wrong_secret = AppCredentials {
        client_secret: "wrong".into(),
        ..setup.app.clone()
    };
    assert_eq!(
        setup
            .client
            .exchange_code(&wrong_secret, "good-code", REDIRECT_URI)
            .await,
        Err(SpotifyError::InvalidClient)
    );
    let unknown_app = AppCredentials {
        client_id: "someone-else".into(),
        ..setup.app.clone()
    };
    assert_eq!(
        setup.client.refresh(&unknown_app, "alice-rt").await,
        Err(SpotifyError::InvalidClient)
    );
}

#[tokio::test]
async fn refresh_grants_an_access_token_until_revoked() {
    let setup = Setup::new().await;
    setup
        .fake
        .set_scenario("bob-rt", Scenario::Paused(FakeTrack::default()));
    let grant = setup.client.refresh(&setup.app, "bob-rt").await.unwrap();
    assert!(!grant.access_token.is_empty());
    assert_eq!(grant.refresh_token, None);
    let again = setup.client.refresh(&setup.app, "bob-rt").await.unwrap();
    assert_ne!(again.access_token, grant.access_token);

    setup.fake.revoke_refresh_token("bob-rt");
    assert_eq!(
        setup.client.refresh(&setup.app, "bob-rt").await,
        Err(SpotifyError::InvalidGrant)
    );
    assert_eq!(
        setup.client.refresh(&setup.app, "never-issued").await,
        Err(SpotifyError::InvalidGrant)
    );
}

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
async fn the_token_endpoint_rate_limit_reads_dates_too() {
    let setup = Setup::new().await;
    setup
        .fake
        .set_scenario("limited-rt", Scenario::NothingPlaying);
    let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
    setup
        .fake
        .rate_limit_token_requests(true, Some(&in_a_minute));
    match setup.client.refresh(&setup.app, "limited-rt").await {
        Err(SpotifyError::RateLimited { retry_after }) => assert!(
            (Duration::from_secs(55)..=Duration::from_secs(60)).contains(&retry_after),
            "{retry_after:?}"
        ),
        other => panic!("expected a rate limit, got {other:?}"),
    }
    setup.fake.rate_limit_token_requests(true, Some("30"));
    assert_eq!(
        setup.client.refresh(&setup.app, "limited-rt").await,
        Err(SpotifyError::RateLimited {
            retry_after: Duration::from_secs(30)
        })
    );
    setup.fake.rate_limit_token_requests(false, None);
    assert!(setup.client.refresh(&setup.app, "limited-rt").await.is_ok());
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
async fn rotating_refresh_tokens_each_work_once() {
    let setup = Setup::new().await;
    setup
        .fake
        .set_scenario("rot-rt", Scenario::Playing(FakeTrack::default()));
    setup.fake.rotate_refresh_tokens("rot-rt");
    let mut current = "rot-rt".to_owned();
    for _ in 0..3 {
        let grant = setup.client.refresh(&setup.app, &current).await.unwrap();
        let next = grant.refresh_token.expect("a rotated refresh token");
        assert_ne!(next, current);
        assert_eq!(
            setup.fake.latest_refresh_token("rot-rt").as_deref(),
            Some(next.as_str())
        );
        // The access token still belongs to the same account.
        assert!(matches!(
            setup.client.currently_playing(&grant.access_token).await,
            Ok(Playback::Item(_))
        ));
        assert_eq!(
            setup.client.refresh(&setup.app, &current).await,
            Err(SpotifyError::InvalidGrant),
            "a used refresh token is dead"
        );
        current = next;
    }
    assert_eq!(setup.fake.currently_playing_calls_for("rot-rt"), 3);
    assert_eq!(setup.fake.currently_playing_calls_for(&current), 3);
}

#[tokio::test]
async fn short_lived_access_tokens_really_expire() {
    let setup = Setup::new().await;
    setup
        .fake
        .set_scenario("brief-rt", Scenario::Paused(FakeTrack::default()));
    setup
        .fake
        .set_access_token_lifetime("brief-rt", Duration::from_secs(1));
    let grant = setup.client.refresh(&setup.app, "brief-rt").await.unwrap();
    assert_eq!(grant.expires_in, Duration::from_secs(1));
    assert!(
        setup
            .client
            .currently_playing(&grant.access_token)
            .await
            .is_ok()
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        setup.client.currently_playing(&grant.access_token).await,
        Err(SpotifyError::Unauthorized)
    );
}

#[tokio::test]
async fn token_requests_are_recorded() {
    let setup = Setup::new().await;
    setup.fake.add_authorization_code("the-code", "gina-rt");
    setup
        .client
        .exchange_code(&setup.app, "the-code", REDIRECT_URI)
        .await
        .unwrap();
    setup.client.refresh(&setup.app, "gina-rt").await.unwrap();
    let requests = setup.fake.token_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].client_id.as_deref(), Some("client-id"));
    assert_eq!(requests[0].field("grant_type"), Some("authorization_code"));
    assert_eq!(requests[0].field("code"), Some("the-code"));
    assert_eq!(requests[0].field("redirect_uri"), Some(REDIRECT_URI));
    assert_eq!(requests[1].field("grant_type"), Some("refresh_token"));
    assert_eq!(requests[1].field("refresh_token"), Some("gina-rt"));
    assert_eq!(requests[1].field("redirect_uri"), None);
    setup.fake.reset_counters();
    assert!(setup.fake.token_requests().is_empty());
}

#[tokio::test]
async fn codes_from_authorize_need_their_redirect_uri() {
    let setup = Setup::new().await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let fake = &setup.fake;
    let client = client_for(fake, GENEROUS);
    // Follows an authorize URL as a browser would, once the user approved.
    let approve = |redirect_uri: &str, state: &str| {
        let url = client.authorize_url("client-id", redirect_uri, state);
        let browser = browser.clone();
        async move {
            let response = browser.get(url).send().await.unwrap();
            assert_eq!(response.status(), 302);
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            url::Url::parse(&location).unwrap()
        }
    };
    let denied = approve(REDIRECT_URI, "s0").await;
    assert!(denied.as_str().starts_with(REDIRECT_URI));
    let query = |url: &url::Url, name: &str| {
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    assert_eq!(query(&denied, "error").as_deref(), Some("access_denied"));
    assert_eq!(query(&denied, "state").as_deref(), Some("s0"));

    fake.approve_as("hank-rt");
    fake.rotate_refresh_tokens("hank-rt");
    let back = approve("https://app.example/cb?tab=1", "s1").await;
    assert_eq!(back.path(), "/cb");
    assert_eq!(query(&back, "tab").as_deref(), Some("1"));
    assert_eq!(query(&back, "state").as_deref(), Some("s1"));
    let code = query(&back, "code").unwrap();
    assert_eq!(
        client
            .exchange_code(&setup.app, &code, "https://app.example/other")
            .await,
        Err(SpotifyError::InvalidGrant),
        "another redirect_uri is refused (RFC 6749 §4.1.3)"
    );
    assert_eq!(
        client
            .exchange_code(&setup.app, &code, "https://app.example/cb?tab=1")
            .await,
        Err(SpotifyError::InvalidGrant),
        "the code was used up by the failed attempt"
    );
    let back = approve("https://app.example/cb?tab=1", "s2").await;
    let grant = client
        .exchange_code(
            &setup.app,
            &query(&back, "code").unwrap(),
            "https://app.example/cb?tab=1",
        )
        .await
        .unwrap();
    let refresh_token = grant.refresh_token.unwrap();
    assert_eq!(
        fake.latest_refresh_token("hank-rt").as_deref(),
        Some(refresh_token.as_str())
    );
    fake.set_scenario("hank-rt", Scenario::Paused(FakeTrack::default()));
    assert!(matches!(
        client.currently_playing(&grant.access_token).await,
        Ok(Playback::Item(CurrentlyPlaying {
            is_playing: false,
            ..
        }))
    ));
    // Unknown apps and requests without a redirect URI get Spotify's error page.
    for url in [
        client.authorize_url("unknown-app", REDIRECT_URI, "s"),
        format!(
            "{}/authorize?client_id=client-id&response_type=code",
            fake.url()
        ),
    ] {
        assert_eq!(browser.get(url).send().await.unwrap().status(), 400);
    }
}

#[tokio::test]
async fn a_spotify_that_never_answers_times_out() {
    let setup = Setup::new().await;
    let token = setup.user("mute-rt", Scenario::NothingPlaying).await;
    setup.fake.stop_answering();
    let impatient = client_for(&setup.fake, SHORT);
    assert_eq!(
        impatient.currently_playing(&token).await,
        Err(SpotifyError::Timeout)
    );
    assert_eq!(
        impatient.refresh(&setup.app, "mute-rt").await,
        Err(SpotifyError::Timeout)
    );
}

#[tokio::test]
async fn server_errors_are_upstream_errors() {
    let setup = Setup::new().await;
    assert_eq!(
        setup.playback(Scenario::ServerError).await,
        Err(SpotifyError::Upstream { status: 500 })
    );
}

#[tokio::test]
async fn expired_or_unknown_access_tokens_are_unauthorized() {
    let setup = Setup::new().await;
    assert_eq!(
        setup.playback(Scenario::AccessTokenExpired).await,
        Err(SpotifyError::Unauthorized)
    );
    assert_eq!(
        setup.client.currently_playing("made-up-token").await,
        Err(SpotifyError::Unauthorized)
    );

    // Expiring the tokens of one user: the old one fails, a refreshed one works.
    let old = setup
        .user("carol-rt", Scenario::Playing(FakeTrack::default()))
        .await;
    setup.fake.expire_access_tokens("carol-rt");
    assert_eq!(
        setup.client.currently_playing(&old).await,
        Err(SpotifyError::Unauthorized)
    );
    let fresh = setup
        .client
        .refresh(&setup.app, "carol-rt")
        .await
        .unwrap()
        .access_token;
    assert!(matches!(
        setup.client.currently_playing(&fresh).await,
        Ok(Playback::Item(_))
    ));
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let setup = Setup::new().await;
    let token = setup
        .user("slow-rt", Scenario::slow(FOREVER, Scenario::NothingPlaying))
        .await;
    let impatient = client_for(&setup.fake, SHORT);
    assert_eq!(
        impatient.currently_playing(&token).await,
        Err(SpotifyError::Timeout)
    );
}

#[tokio::test]
async fn a_slow_answer_within_the_timeout_arrives() {
    let setup = Setup::new().await;
    let now = setup
        .currently_playing(Scenario::slow(
            Duration::from_millis(50),
            Scenario::Paused(FakeTrack::default()),
        ))
        .await;
    assert!(!now.is_playing);
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

#[tokio::test]
async fn an_allowed_image_downloads() {
    let setup = Setup::new().await;
    let bytes: Vec<u8> = (0..=255).cycle().take(100_000).collect();
    let url = setup
        .fake
        .add_image("cover.jpg", bytes.clone(), "image/jpeg");
    let fetched = setup
        .client
        .fetch_image(&url, &setup.policy(1024 * 1024))
        .await
        .unwrap();
    assert_eq!(fetched, bytes);
    // Exactly at the cap is still fine.
    let exact = setup
        .client
        .fetch_image(&url, &setup.policy(bytes.len()))
        .await
        .unwrap();
    assert_eq!(exact.len(), bytes.len());
}

#[tokio::test]
async fn images_from_other_hosts_are_rejected_without_a_request() {
    let setup = Setup::new().await;
    let url = setup
        .fake
        .add_image("cover.jpg", vec![1, 2, 3], "image/jpeg");
    let other_host = ImagePolicy {
        allowed_hosts: ImagePolicy::parse_hosts("i.scdn.co,http://localhost").unwrap(),
        max_bytes: 1024,
    };
    let https_only = ImagePolicy {
        allowed_hosts: ImagePolicy::parse_hosts("127.0.0.1").unwrap(),
        max_bytes: 1024,
    };
    for policy in [other_host, https_only, ImagePolicy::default()] {
        let result = setup.client.fetch_image(&url, &policy).await;
        assert!(
            matches!(result, Err(SpotifyError::ImageRejected(_))),
            "{policy:?}: {result:?}"
        );
    }
    let anything = setup.policy(1024);
    for url in [
        "file:///etc/passwd",
        "data:image/png;base64,AAAA",
        "ftp://127.0.0.1/x",
        "not a url",
        "",
    ] {
        let result = setup.client.fetch_image(url, &anything).await;
        assert!(
            matches!(result, Err(SpotifyError::ImageRejected(_))),
            "{url:?}: {result:?}"
        );
    }
    assert_eq!(setup.fake.calls(Endpoint::Image), 0);
}

#[tokio::test]
async fn oversized_images_are_rejected() {
    let setup = Setup::new().await;
    let announced = setup.fake.add_image("big.jpg", vec![7; 2000], "image/jpeg");
    assert!(matches!(
        setup
            .client
            .fetch_image(&announced, &setup.policy(1999))
            .await,
        Err(SpotifyError::ImageRejected(_))
    ));
    // No Content-Length and no end: only a client that stops reading at the cap answers
    // (one that buffered it all would hang until the timeout).
    let endless = setup.fake.add_endless_image("endless.jpg", "image/jpeg");
    assert!(matches!(
        setup
            .client
            .fetch_image(&endless, &setup.policy(1024 * 1024))
            .await,
        Err(SpotifyError::ImageRejected(_))
    ));
}

#[tokio::test]
async fn a_slow_image_times_out() {
    let setup = Setup::new().await;
    let url = setup
        .fake
        .add_slow_image("slow.jpg", vec![1], "image/jpeg", FOREVER);
    let impatient = client_for(&setup.fake, SHORT);
    assert_eq!(
        impatient.fetch_image(&url, &setup.policy(1024)).await,
        Err(SpotifyError::Timeout)
    );
}

#[tokio::test]
async fn redirects_are_checked_against_the_policy() {
    let setup = Setup::new().await;
    let target = setup.fake.add_image("target.jpg", vec![9, 9], "image/jpeg");
    let same_host = setup.fake.add_image_redirect("hop.jpg", &target);
    assert_eq!(
        setup
            .client
            .fetch_image(&same_host, &setup.policy(1024))
            .await
            .unwrap(),
        vec![9, 9]
    );
    let relative = setup
        .fake
        .add_image_redirect("relative.jpg", "/images/target.jpg");
    assert_eq!(
        setup
            .client
            .fetch_image(&relative, &setup.policy(1024))
            .await
            .unwrap(),
        vec![9, 9]
    );

    setup.fake.reset_counters();
    let elsewhere = target.replace("127.0.0.1", "localhost");
    let off_host = setup.fake.add_image_redirect("away.jpg", &elsewhere);
    assert!(matches!(
        setup
            .client
            .fetch_image(&off_host, &setup.policy(1024))
            .await,
        Err(SpotifyError::ImageRejected(_))
    ));
    assert_eq!(setup.fake.calls(Endpoint::Image), 1);

    let looping = setup
        .fake
        .add_image_redirect("loop.jpg", "/images/loop.jpg");
    assert!(matches!(
        setup
            .client
            .fetch_image(&looping, &setup.policy(1024))
            .await,
        Err(SpotifyError::ImageRejected(_))
    ));
}

#[tokio::test]
async fn missing_images_are_upstream_errors() {
    let setup = Setup::new().await;
    let url = format!("{}/images/nothing-here.jpg", setup.fake.url());
    assert_eq!(
        setup.client.fetch_image(&url, &setup.policy(1024)).await,
        Err(SpotifyError::Upstream { status: 404 })
    );
}

#[tokio::test]
async fn a_closed_port_is_a_network_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = SpotifyClient::new(SpotifyEndpoints {
        accounts_url: url.clone(),
        api_url: url,
        timeout: GENEROUS,
    })
    .unwrap();
    assert!(matches!(
        client.currently_playing("token").await,
        Err(SpotifyError::Network(_))
    ));
}

#[tokio::test]
async fn the_fake_stops_on_shutdown() {
    let setup = Setup::new().await;
    let token = setup.user("gina-rt", Scenario::NothingPlaying).await;
    setup.fake.clone().shutdown();
    let result = setup.client.currently_playing(&token).await;
    assert!(
        matches!(result, Err(SpotifyError::Network(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn the_fake_stops_when_the_last_handle_drops() {
    let Setup { fake, client, app } = Setup::new().await;
    fake.set_scenario("jo-rt", Scenario::NothingPlaying);
    let token = client.refresh(&app, "jo-rt").await.unwrap().access_token;
    let other_handle = fake.clone();
    drop(fake);
    assert_eq!(
        client.currently_playing(&token).await,
        Ok(Playback::Nothing)
    );
    drop(other_handle);
    let result = client.currently_playing(&token).await;
    assert!(
        matches!(result, Err(SpotifyError::Network(_))),
        "{result:?}"
    );
}

/// Other clients authenticate with form fields rather than HTTP Basic; the fake takes both.
#[tokio::test]
async fn the_fake_accepts_client_credentials_in_the_form() {
    let setup = Setup::new().await;
    setup.fake.add_authorization_code("form-code", "hank-rt");
    let http = reqwest::Client::new();
    let token_url = format!("{}/api/token", setup.fake.url());
    let post = |body: &'static str| {
        http.post(&token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let refused = post("grant_type=authorization_code&code=form-code&redirect_uri=x&client_id=client-id&client_secret=nope")
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(
        refused.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let missing_redirect =
        post("grant_type=authorization_code&code=form-code&client_id=client-id&client_secret=client-secret")
            .await
            .unwrap();
    assert_eq!(missing_redirect.status(), 400);
    let granted = post("grant_type=authorization_code&code=form-code&redirect_uri=x&client_id=client-id&client_secret=client-secret")
        .await
        .unwrap();
    assert_eq!(granted.status(), 200);
    let body: serde_json::Value = granted.json().await.unwrap();
    assert_eq!(body["refresh_token"], "hank-rt");
    assert_eq!(body["token_type"], "Bearer");

    setup.fake.revoke_refresh_token("hank-rt");
    let revoked = post("grant_type=refresh_token&refresh_token=hank-rt&client_id=client-id&client_secret=client-secret")
        .await
        .unwrap();
    assert_eq!(revoked.status(), 400);
    assert_eq!(
        revoked.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"error": "invalid_grant", "error_description": "Refresh token revoked"})
    );
}

/// Without `additional_types=episode`, Spotify (and the fake) leave episodes undescribed.
#[tokio::test]
async fn the_fake_describes_episodes_only_when_asked() {
    let setup = Setup::new().await;
    let token = setup
        .user("ivy-rt", Scenario::Episode(FakeEpisode::default()))
        .await;
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/v1/me/player/currently-playing",
            setup.fake.url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["currently_playing_type"], "episode");
    assert_eq!(body["item"], serde_json::Value::Null);
}
