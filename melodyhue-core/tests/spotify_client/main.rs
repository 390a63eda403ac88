//! The Spotify client against the fake Spotify, over real loopback sockets.

// Test helpers, like tests, may unwrap: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use melodyhue_core::spotify::{
    AppCredentials, CurrentlyPlaying, CurrentlyPlayingType, DEFAULT_RETRY_AFTER, ImagePolicy,
    MAX_RETRY_AFTER, Playback, SpotifyClient, SpotifyEndpoints, SpotifyError,
};
use melodyhue_testkit::fake_spotify::{Endpoint, FakeEpisode, FakeSpotify, FakeTrack, Scenario};

mod accounts;
mod failures;
mod fake;
mod images;
mod playback;

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
