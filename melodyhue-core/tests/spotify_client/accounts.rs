//! The accounts service: the authorization URL, code exchange, refresh and rotated refresh
//! tokens, access tokens' life, the token requests.

use super::*;

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
