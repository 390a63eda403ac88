//! `/auth/login/2fa`, `/auth/2fa/*`, `/auth/forgot` and `/auth/reset`: second factor and
//! recovery by e-mail.

use serde::Serialize;

use super::auth::with_token_cookies;
use super::response::ok;
use super::{ApiError, Ctx, Reply};

/// The body of a successful `/auth/login/2fa`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TwoFactorLoginTokens<'a> {
    /// Access JWT.
    pub access_token: &'a str,
    /// Refresh JWT.
    pub refresh_token: &'a str,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// The account's id.
    pub user_id: &'a str,
    /// The account's role.
    pub role: &'static str,
}

/// The body of `/auth/2fa/setup`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TwoFactorSetupView<'a> {
    /// Base32 secret.
    pub secret: &'a str,
    /// `otpauth://` URL.
    pub otpauth_url: &'a str,
}

/// The body of `/auth/forgot` and `/auth/2fa/disable/request`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SentView {
    /// Always `sent`.
    pub status: &'static str,
    /// Whether mail is configured (`/auth/2fa/disable/request` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_sent: Option<bool>,
    /// The raw token, only with `EMAIL_DEBUG=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Six digits, with room for the spaces and dashes users type between them (`123 456`).
const CODE_LENGTH: std::ops::RangeInclusive<usize> = 1..=16;

pub(super) async fn login(cx: &Ctx<'_>) -> Reply {
    let mut input = cx.input(false)?;
    let ticket = input.string("ticket", 1..=64);
    let code = input.string("totp", CODE_LENGTH);
    input.finish()?;
    let tokens = cx
        .app
        .login_two_factor(&ticket, &code, cx.client_ip())
        .await?;
    let body = TwoFactorLoginTokens {
        access_token: &tokens.access_token,
        refresh_token: &tokens.refresh_token,
        token_type: "bearer",
        user_id: &tokens.user.id,
        role: tokens.user.role.as_str(),
    };
    Ok(with_token_cookies(cx, ok(&body), &tokens))
}

pub(super) async fn setup(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let setup = cx.app.setup_two_factor(&principal.user).await?;
    Ok(ok(&TwoFactorSetupView {
        secret: &setup.secret,
        otpauth_url: &setup.otpauth_url,
    }))
}

fn code(cx: &Ctx<'_>) -> Result<String, ApiError> {
    let mut input = cx.input(false)?;
    let code = input.string("code", CODE_LENGTH);
    input.finish()?;
    Ok(code)
}

pub(super) async fn verify(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let code = code(cx)?;
    cx.app
        .verify_two_factor(&principal.user, &code, cx.client_ip())
        .await?;
    Ok(ok(&serde_json::json!({"status": "ok"})))
}

pub(super) async fn disable(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let code = code(cx)?;
    cx.app
        .disable_two_factor(&principal.user, &code, cx.client_ip())
        .await?;
    Ok(ok(&serde_json::json!({"status": "disabled"})))
}

pub(super) async fn disable_request(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let sent = cx
        .app
        .request_two_factor_disable(&principal.user, cx.client_ip())
        .await?;
    Ok(ok(&SentView {
        status: "sent",
        email_sent: Some(sent.email_sent),
        token: sent.debug_token,
    }))
}

pub(super) async fn disable_confirm(cx: &Ctx<'_>) -> Reply {
    let token = if cx.method == http::Method::GET {
        let mut query = cx.query();
        let token = query.optional_string("token", 256);
        query.finish()?;
        token.ok_or_else(|| {
            ApiError::Validation(vec![super::FieldError::new(
                &["query", "token"],
                "missing",
                "Field required",
            )])
        })?
    } else {
        let mut input = cx.input(false)?;
        let token = input.string("token", 1..=256);
        input.finish()?;
        token
    };
    cx.app.confirm_two_factor_disable(&token).await?;
    Ok(ok(&serde_json::json!({"status": "disabled"})))
}

pub(super) async fn forgot(cx: &Ctx<'_>) -> Reply {
    let mut input = cx.input(false)?;
    let email = input.email("email");
    input.finish()?;
    let token = cx.app.forgot_password(&email, cx.client_ip()).await?;
    Ok(ok(&SentView {
        status: "sent",
        email_sent: None,
        token,
    }))
}

pub(super) async fn reset(cx: &Ctx<'_>) -> Reply {
    let mut input = cx.input(false)?;
    let token = input.string("token", 1..=256);
    let new_password = input.string("new_password", 8..=128);
    input.finish()?;
    cx.app
        .reset_password(&token, &new_password, cx.client_ip())
        .await?;
    Ok(ok(&serde_json::json!({"status": "ok"})))
}
