//! Each user's Spotify connection: their own app's client id and secret, and the refresh token
//! of their account, encrypted at rest.
//!
//! Connecting is OAuth's authorization code flow (RFC 6749 §4.1): `/spotify/auth/url` records an
//! authorization in the database (so that any server of a deployment can complete it) under a
//! random `state`, and the callback takes it back, once, to learn the `redirect_uri` the code
//! exchange must repeat.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::TimeDelta;

use super::{Error, Result};
use crate::App;
use crate::auth::token_hash;
use crate::cluster::changes::Change;
use crate::model::{
    SpotifyAuthorization, SpotifyCredentials, SpotifyCredentialsPatch, User, random_bytes,
};
use crate::spotify::{AppCredentials, SpotifyError};

/// How long an authorization can be completed after `/spotify/auth/url` made it.
pub const SPOTIFY_AUTHORIZATION_LIFETIME: TimeDelta = TimeDelta::minutes(10);
/// Authorizations one user may have in progress at once (tabs, retries); asking for more
/// drops the oldest.
pub const MAX_PENDING_SPOTIFY_AUTHORIZATIONS: u32 = 10;

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

/// Each user's link to Spotify: their app credentials and the authorization flow.
///
/// A view of an [`App`], from [`App::spotify`].
#[derive(Debug, Clone, Copy)]
pub struct Spotify<'a> {
    pub(crate) app: &'a App,
}

impl<'a> Spotify<'a> {
    /// The caller's stored credentials (all `None` when never set, or when the account was
    /// deleted meanwhile).
    async fn credentials(self, user: &User) -> Result<SpotifyCredentials> {
        let stored = self.app.inner().store.spotify_credentials(&user.id).await?;
        Ok(stored.unwrap_or_default())
    }

    /// What the caller has configured.
    pub async fn spotify_status(self, user: &User) -> Result<SpotifyStatus> {
        let credentials = self.credentials(user).await?;
        Ok(SpotifyStatus::from(&credentials))
    }

    /// Stores new credentials (secrets encrypted); the now-playing hub picks them up at once.
    pub async fn update_spotify_credentials(
        self,
        user: &User,
        input: SpotifyCredentialsInput,
    ) -> Result<SpotifyStatus> {
        let inner = self.app.inner();
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
            .update_spotify_credentials(&user.id, &patch, self.app.now())
            .await?;
        inner.hub.lift_hold(&user.id).await;
        self.app.announce(Change::Credentials {
            user_id: user.id.clone(),
        });
        Ok(SpotifyStatus::from(&credentials))
    }

    /// The Spotify consent page for the caller's own app, sending Spotify's answer to
    /// `redirect_uri` (default `SPOTIFY_REDIRECT_URI`). Records an authorization that the
    /// caller's callback can complete within [`SPOTIFY_AUTHORIZATION_LIFETIME`]; the URL's
    /// `state` (32 random bytes, base64url) names it, and only its SHA-256 is stored.
    pub async fn spotify_authorize_url(
        self,
        user: &User,
        redirect_uri: Option<&str>,
    ) -> Result<String> {
        let inner = self.app.inner();
        let credentials = self.credentials(user).await?;
        let client_id = credentials
            .client_id
            .ok_or(Error::Rejected("Spotify client id not configured"))?;
        let redirect_uri = redirect_uri.unwrap_or(&inner.config.spotify.redirect_uri);
        let state = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let now = self.app.now();
        let authorization = SpotifyAuthorization {
            state_hash: token_hash(&state),
            user_id: user.id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            created_at: now,
            expires_at: now + SPOTIFY_AUTHORIZATION_LIFETIME,
        };
        inner
            .store
            .insert_spotify_authorization(&authorization, MAX_PENDING_SPOTIFY_AUTHORIZATIONS, now)
            .await?;
        Ok(inner
            .spotify
            .authorize_url(&client_id, redirect_uri, &state))
    }

    /// Completes one of the caller's authorizations: exchanges the authorization `code`
    /// Spotify sent back for the caller's refresh token.
    ///
    /// The authorization is the one `state` names, or without `state` (the MelodyHue web
    /// frontend does not pass it on) the caller's newest; either way it is used up, and
    /// an unknown, used, expired or other user's `state`, or no authorization in progress,
    /// is refused. The exchange repeats the authorization's `redirect_uri`, unless the
    /// caller gives one.
    pub async fn spotify_callback(
        self,
        user: &User,
        code: &str,
        state: Option<&str>,
        redirect_uri: Option<&str>,
    ) -> Result<()> {
        let inner = self.app.inner();
        // A caller without an app keeps their authorization for when they have one.
        let app = self.spotify_app(user).await?;
        let authorization = inner
            .store
            .take_spotify_authorization(&user.id, state.map(token_hash).as_deref(), self.app.now())
            .await?
            .ok_or(Error::Rejected(if state.is_some() {
                "Invalid or expired Spotify authorization state"
            } else {
                "No Spotify authorization in progress"
            }))?;
        let redirect_uri = redirect_uri.unwrap_or(&authorization.redirect_uri);
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
    pub async fn spotify_logout(self, user: &User) -> Result<()> {
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
    async fn spotify_app(self, user: &User) -> Result<AppCredentials> {
        let inner = self.app.inner();
        let credentials = self.credentials(user).await?;
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
