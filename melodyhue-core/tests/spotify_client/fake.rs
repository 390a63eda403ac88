//! The fake Spotify itself: its shutdown, and the Spotify behaviours it copies.

use super::*;

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
