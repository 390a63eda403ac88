//! `/auth`: register, log in, refresh, log out.

use bytes::Bytes;
use http::Response;
use serde::Serialize;

use super::bodies::{LoginBody, RefreshTokenBody, RegisterBody};
use super::response::{clear_auth_cookies, ok, set_auth_cookies};
use super::{Ctx, REFRESH_COOKIE, Reply};
use crate::model::RefreshToken;
use crate::service::{IssuedTokens, LoginOutcome, Registration};

/// The body of a successful register or login.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginTokens<'a> {
    /// Access JWT.
    pub access_token: &'a str,
    /// Refresh JWT.
    pub refresh_token: &'a str,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Always `false` here.
    pub requires_2fa: bool,
    /// Always `null` here.
    pub ticket: Option<&'a str>,
    /// The account's role.
    pub role: &'static str,
    /// The account's id.
    pub user_id: &'a str,
}

impl<'a> From<&'a IssuedTokens> for LoginTokens<'a> {
    fn from(tokens: &'a IssuedTokens) -> Self {
        LoginTokens {
            access_token: &tokens.access_token,
            refresh_token: &tokens.refresh_token,
            token_type: "bearer",
            requires_2fa: false,
            ticket: None,
            role: tokens.user.role.as_str(),
            user_id: &tokens.user.id,
        }
    }
}

/// The body of a login that needs the TOTP code.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TwoFactorRequired<'a> {
    /// Always `true`.
    pub requires_2fa: bool,
    /// Send it to `/auth/login/2fa` with the code.
    pub ticket: &'a str,
}

/// The body of a successful refresh.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefreshedTokens<'a> {
    /// Access JWT.
    pub access_token: &'a str,
    /// Refresh JWT.
    pub refresh_token: &'a str,
    /// Always `bearer`.
    pub token_type: &'static str,
}

/// A response carrying fresh tokens in its body and in the auth cookies.
pub(super) fn with_token_cookies(
    cx: &Ctx<'_>,
    mut response: Response<Bytes>,
    tokens: &IssuedTokens,
) -> Response<Bytes> {
    set_auth_cookies(
        &mut response,
        &cx.app.config().cookies,
        &tokens.access_token,
        &tokens.refresh_token,
    );
    response
}

pub(super) async fn register(cx: &Ctx<'_>) -> Reply {
    let body = RegisterBody::read(cx.input(false)?)?;
    let tokens = cx
        .app
        .accounts()
        .register(
            Registration {
                username: body.username,
                email: body.email,
                password: body.password,
            },
            cx.client_ip(),
        )
        .await?;
    Ok(with_token_cookies(
        cx,
        ok(&LoginTokens::from(&tokens)),
        &tokens,
    ))
}

pub(super) async fn login(cx: &Ctx<'_>) -> Reply {
    let body = LoginBody::read(cx.input(false)?)?;
    match cx
        .app
        .accounts()
        .login(&body.username_or_email, &body.password, cx.client_ip())
        .await?
    {
        LoginOutcome::Tokens(tokens) => Ok(with_token_cookies(
            cx,
            ok(&LoginTokens::from(&tokens)),
            &tokens,
        )),
        LoginOutcome::TwoFactorRequired { ticket } => Ok(ok(&TwoFactorRequired {
            requires_2fa: true,
            ticket: &ticket,
        })),
    }
}

/// The refresh token of `/auth/refresh` and `/auth/logout`: the body's, else the cookie's.
fn refresh_token(cx: &Ctx<'_>, body: RefreshTokenBody) -> Option<String> {
    body.refresh_token
        .map(RefreshToken::into_string)
        .filter(|t| !t.is_empty())
        .or_else(|| cx.cookie(REFRESH_COOKIE))
}

pub(super) async fn refresh(cx: &Ctx<'_>) -> Reply {
    let token = refresh_token(cx, RefreshTokenBody::read(cx.input(true)?)?);
    let tokens = cx.app.accounts().refresh(token.as_deref()).await?;
    let body = RefreshedTokens {
        access_token: &tokens.access_token,
        refresh_token: &tokens.refresh_token,
        token_type: "bearer",
    };
    Ok(with_token_cookies(cx, ok(&body), &tokens))
}

pub(super) async fn logout(cx: &Ctx<'_>) -> Reply {
    // Logout never fails: a malformed body just means "use the cookie".
    let body = cx
        .input(true)
        .and_then(RefreshTokenBody::read)
        .unwrap_or_default();
    let token = refresh_token(cx, body);
    cx.app.accounts().logout(token.as_deref()).await;
    let mut response = ok(&serde_json::json!({"status": "ok"}));
    clear_auth_cookies(&mut response, &cx.app.config().cookies);
    Ok(response)
}
