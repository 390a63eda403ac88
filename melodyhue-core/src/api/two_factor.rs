//! `/auth/login/2fa`, `/auth/2fa/*`, `/auth/forgot` and `/auth/reset`: second factor and
//! recovery by e-mail.

use serde::Serialize;

use super::auth::with_token_cookies;
use super::bodies::{CodeBody, EmailBody, ResetBody, TokenBody, TwoFactorLoginBody};
use super::response::ok;
use super::{ApiError, Ctx, Reply};
use crate::model::MailedToken;

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

pub(super) async fn login(cx: &Ctx<'_>) -> Reply {
    let body = TwoFactorLoginBody::read(cx.input(false)?)?;
    let tokens = cx
        .app
        .two_factor()
        .login_two_factor(&body.ticket, &body.totp, cx.client_ip())
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
    let setup = cx
        .app
        .two_factor()
        .setup_two_factor(&principal.user)
        .await?;
    Ok(ok(&TwoFactorSetupView {
        secret: &setup.secret,
        otpauth_url: &setup.otpauth_url,
    }))
}

pub(super) async fn verify(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let body = CodeBody::read(cx.input(false)?)?;
    cx.app
        .two_factor()
        .verify_two_factor(&principal.user, &body.code, cx.client_ip())
        .await?;
    Ok(ok(&serde_json::json!({"status": "ok"})))
}

pub(super) async fn disable(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let body = CodeBody::read(cx.input(false)?)?;
    cx.app
        .two_factor()
        .disable_two_factor(&principal.user, &body.code, cx.client_ip())
        .await?;
    Ok(ok(&serde_json::json!({"status": "disabled"})))
}

pub(super) async fn disable_request(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let sent = cx
        .app
        .two_factor()
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
        let token = query.optional_string("token", MailedToken::MAX_CHARS);
        query.finish()?;
        token.ok_or_else(|| {
            ApiError::Validation(vec![super::FieldError::new(
                &["query", "token"],
                "missing",
                "Field required",
            )])
        })?
    } else {
        TokenBody::read(cx.input(false)?)?.token.into_string()
    };
    cx.app
        .two_factor()
        .confirm_two_factor_disable(&token)
        .await?;
    Ok(ok(&serde_json::json!({"status": "disabled"})))
}

pub(super) async fn forgot(cx: &Ctx<'_>) -> Reply {
    let body = EmailBody::read(cx.input(false)?)?;
    let token = cx
        .app
        .recovery()
        .forgot_password(&body.email, cx.client_ip())
        .await?;
    Ok(ok(&SentView {
        status: "sent",
        email_sent: None,
        token,
    }))
}

pub(super) async fn reset(cx: &Ctx<'_>) -> Reply {
    let body = ResetBody::read(cx.input(false)?)?;
    cx.app
        .recovery()
        .reset_password(&body.token, &body.new_password, cx.client_ip())
        .await?;
    Ok(ok(&serde_json::json!({"status": "ok"})))
}
