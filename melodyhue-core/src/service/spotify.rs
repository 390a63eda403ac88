//! Each user's Spotify connection: their own app's client id and secret, and the refresh token
//! of their account, encrypted at rest.

use super::{Error, Result};
use crate::App;
use crate::model::{SpotifyCredentials, SpotifyCredentialsPatch, User};
use crate::spotify::{AppCredentials, SpotifyError};

/// What is configured, without revealing any of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpotifyStatus {
    /// A client id is stored.
    pub has_client_id: bool,
    /// A client secret is stored.
    pub has_client_secret: bool,
    /// A refresh token is stored: the account is connected.
    pub has_refresh_token: bool,
}

impl From<&SpotifyCredentials> for SpotifyStatus {
    fn from(c: &SpotifyCredentials) -> Self {
        SpotifyStatus {
            has_client_id: c.client_id.is_some(),
            has_client_secret: c.client_secret_encrypted.is_some(),
            has_refresh_token: c.refresh_token_encrypted.is_some(),
        }
    }
}

/// A change of credentials in plain text: `None` keeps a field, a blank value clears it.
#[derive(Debug, Clone, Default)]
pub struct SpotifyCredentialsInput {
    /// New client id.
    pub client_id: Option<String>,
    /// New client secret.
    pub client_secret: Option<String>,
    /// New refresh token.
    pub refresh_token: Option<String>,
}

impl App {
    /// What the caller has configured.
    pub async fn spotify_status(&self, user: &User) -> Result<SpotifyStatus> {
        let credentials = self.inner().store.spotify_credentials(&user.id).await?;
        Ok(SpotifyStatus::from(&credentials))
    }

    /// Stores new credentials (secrets encrypted); the now-playing hub picks them up at once.
    pub async fn update_spotify_credentials(
        &self,
        user: &User,
        input: SpotifyCredentialsInput,
    ) -> Result<SpotifyStatus> {
        let inner = self.inner();
        let blank_clears = |value: Option<String>| {
            value.map(|v| {
                let v = v.trim().to_owned();
                (!v.is_empty()).then_some(v)
            })
        };
        let encrypt =
            |value: Option<Option<String>>| value.map(|v| v.map(|v| inner.secrets.encrypt(&v)));
        let patch = SpotifyCredentialsPatch {
            client_id: blank_clears(input.client_id),
            client_secret_encrypted: encrypt(blank_clears(input.client_secret)),
            refresh_token_encrypted: encrypt(blank_clears(input.refresh_token)),
        };
        let credentials = inner
            .store
            .update_spotify_credentials(&user.id, &patch, self.now())
            .await?;
        inner.hub.credentials_changed(&user.id);
        Ok(SpotifyStatus::from(&credentials))
    }

    /// The Spotify consent page for the caller's own app.
    pub async fn spotify_authorize_url(
        &self,
        user: &User,
        redirect_uri: Option<&str>,
    ) -> Result<String> {
        let inner = self.inner();
        let credentials = inner.store.spotify_credentials(&user.id).await?;
        let client_id = credentials
            .client_id
            .ok_or(Error::Rejected("Spotify client id not configured"))?;
        let redirect_uri = redirect_uri.unwrap_or(&inner.config.spotify.redirect_uri);
        Ok(inner.spotify.authorize_url(&client_id, redirect_uri))
    }

    /// Exchanges the authorization code Spotify sent back for the caller's refresh token.
    pub async fn spotify_callback(
        &self,
        user: &User,
        code: &str,
        redirect_uri: Option<&str>,
    ) -> Result<()> {
        let inner = self.inner();
        let app = self.spotify_app(user).await?;
        let redirect_uri = redirect_uri.unwrap_or(&inner.config.spotify.redirect_uri);
        let grant = inner
            .spotify
            .exchange_code(&app, code, redirect_uri)
            .await
            .map_err(|err| match err {
                SpotifyError::InvalidGrant | SpotifyError::InvalidClient => {
                    Error::Rejected("Spotify refused the authorization code")
                }
                other => upstream(other),
            })?;
        let refresh_token = grant
            .refresh_token
            .ok_or(Error::Rejected("Spotify sent no refresh token"))?;
        self.update_spotify_credentials(
            user,
            SpotifyCredentialsInput {
                refresh_token: Some(refresh_token),
                ..SpotifyCredentialsInput::default()
            },
        )
        .await
        .map(drop)
    }

    /// Forgets the caller's refresh token: their overlays fall back to the default color.
    pub async fn spotify_logout(&self, user: &User) -> Result<()> {
        self.update_spotify_credentials(
            user,
            SpotifyCredentialsInput {
                refresh_token: Some(String::new()),
                ..SpotifyCredentialsInput::default()
            },
        )
        .await
        .map(drop)
    }

    /// The caller's own Spotify app, decrypted.
    async fn spotify_app(&self, user: &User) -> Result<AppCredentials> {
        let inner = self.inner();
        let credentials = inner.store.spotify_credentials(&user.id).await?;
        let client_id = credentials
            .client_id
            .ok_or(Error::Rejected("Spotify client id not configured"))?;
        let client_secret = credentials
            .client_secret_encrypted
            .ok_or(Error::Rejected("Spotify client secret not configured"))?;
        let client_secret = inner
            .secrets
            .decrypt(&client_secret)
            .map_err(Error::internal)?;
        Ok(AppCredentials {
            client_id,
            client_secret,
        })
    }
}

/// Spotify could not be reached or answered nonsense: a gateway failure, not the caller's.
fn upstream(err: SpotifyError) -> Error {
    tracing::warn!(error = %err, "Spotify call failed");
    Error::Upstream
}
