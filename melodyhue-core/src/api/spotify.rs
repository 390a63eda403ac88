//! `/spotify`: the caller's Spotify app credentials and account connection.

use serde::Serialize;

use super::bodies::SpotifyCredentialsBody;
use super::response::ok;
use super::{ApiError, Ctx, Reply};
use crate::service::SpotifyStatus;

/// `/spotify/credentials/status`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CredentialsStatusView {
    /// A client id is stored.
    pub has_client_id: bool,
    /// A client secret is stored.
    pub has_client_secret: bool,
    /// A refresh token is stored.
    pub has_refresh_token: bool,
}

impl From<SpotifyStatus> for CredentialsStatusView {
    fn from(s: SpotifyStatus) -> Self {
        CredentialsStatusView {
            has_client_id: s.has_client_id,
            has_client_secret: s.has_client_secret,
            has_refresh_token: s.has_refresh_token,
        }
    }
}

pub(super) async fn credentials_status(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let status = cx.app.spotify().spotify_status(&principal.user).await?;
    Ok(ok(&CredentialsStatusView::from(status)))
}

pub(super) async fn update_credentials(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let body = SpotifyCredentialsBody::read(cx.input(false)?)?;
    let status = cx
        .app
        .spotify()
        .update_spotify_credentials(&principal.user, body.into())
        .await?;
    Ok(ok(&CredentialsStatusView::from(status)))
}

/// Longest `redirect_uri` accepted, in characters.
const MAX_REDIRECT_URI_CHARS: usize = 2048;

pub(super) async fn auth_url(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let mut query = cx.query();
    let redirect_uri = query.optional_url("redirect_uri", MAX_REDIRECT_URI_CHARS);
    query.finish()?;
    let url = cx
        .app
        .spotify()
        .spotify_authorize_url(&principal.user, redirect_uri.as_deref())
        .await?;
    Ok(ok(&serde_json::json!({ "url": url })))
}

pub(super) async fn callback(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let mut query = cx.query();
    let code = query.optional_string("code", 2048);
    let state = query.optional_string("state", 512);
    let redirect_uri = query.optional_url("redirect_uri", MAX_REDIRECT_URI_CHARS);
    query.finish()?;
    let code = code.ok_or(ApiError::BadRequest("Missing authorization code"))?;
    cx.app
        .spotify()
        .spotify_callback(
            &principal.user,
            &code,
            state.as_deref(),
            redirect_uri.as_deref(),
        )
        .await?;
    Ok(ok(&serde_json::json!({"status": "ok"})))
}

pub(super) async fn auth_status(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let status = cx.app.spotify().spotify_status(&principal.user).await?;
    Ok(ok(
        &serde_json::json!({"authenticated": status.has_refresh_token}),
    ))
}

pub(super) async fn logout(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    cx.app.spotify().spotify_logout(&principal.user).await?;
    Ok(ok(&serde_json::json!({"status": "logged_out"})))
}
