//! A Spotify that fails: one that never answers, answers slowly, errs, or is not there.

use super::*;

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
