//! `/users/me...` and `/settings/me`: the caller's own account and settings.

use md5::{Digest, Md5};
use serde::Serialize;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

use super::bodies::{EmailBody, PasswordChangeBody, SettingsPatchBody, TokenBody, UsernameBody};
use super::response::{ok, rfc3339};
use super::{ApiError, Ctx, FieldError, Reply};
use crate::model::{MailedToken, Settings, User};
use crate::service::Error;
use crate::service::Profile;
use chrono::{DateTime, Utc};

/// Gravatar of an e-mail: MD5 of the trimmed, lowercased address.
pub(super) fn avatar_url(email: &str) -> String {
    let digest = Md5::digest(email.trim().to_lowercase().as_bytes());
    format!(
        "https://www.gravatar.com/avatar/{}?s=128&d=identicon",
        hex::encode(digest)
    )
}

/// `/users/me`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeView {
    /// Id.
    pub id: String,
    /// Name.
    pub username: String,
    /// E-mail.
    pub email: String,
    /// Role.
    pub role: &'static str,
    /// Creation.
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// Last login.
    #[serde(with = "rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_login_at: Option<DateTime<Utc>>,
    /// Gravatar.
    pub avatar_url: String,
    /// Fallback color.
    pub default_overlay_color: String,
    /// 2FA active.
    pub twofa_enabled: bool,
}

impl From<Profile> for MeView {
    fn from(profile: Profile) -> Self {
        let user = profile.user;
        MeView {
            avatar_url: avatar_url(&user.email),
            id: user.id,
            username: user.username,
            email: user.email,
            role: user.role.as_str(),
            created_at: user.created_at,
            last_login_at: user.last_login_at,
            default_overlay_color: profile.default_overlay_color,
            twofa_enabled: profile.twofa_enabled,
        }
    }
}

/// `/settings/me`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SettingsView {
    /// Theme.
    pub theme: String,
    /// Layout.
    pub layout: String,
    /// Fallback color.
    pub default_overlay_color: String,
    /// Avatar mode.
    pub avatar_mode: String,
    /// Avatar color.
    pub avatar_color: String,
}

impl From<Settings> for SettingsView {
    fn from(s: Settings) -> Self {
        SettingsView {
            theme: s.theme,
            layout: s.layout,
            default_overlay_color: s.default_overlay_color,
            avatar_mode: s.avatar_mode,
            avatar_color: s.avatar_color,
        }
    }
}

async fn me_view(cx: &Ctx<'_>, user: User) -> Reply {
    Ok(ok(&MeView::from(cx.app.accounts().profile(user).await?)))
}

pub(super) async fn me(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    me_view(cx, principal.user).await
}

pub(super) async fn delete_me(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    cx.app.accounts().delete_account(&principal.user).await?;
    Ok(ok(&serde_json::json!({"status": "deleted"})))
}

pub(super) async fn change_username(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let body = UsernameBody::read(cx.input(false)?)?;
    let user = cx
        .app
        .accounts()
        .change_username(&principal.user, &body.username)
        .await?;
    me_view(cx, user).await
}

pub(super) async fn change_email(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let body = EmailBody::read(cx.input(false)?)?;
    let user = cx
        .app
        .accounts()
        .change_email(&principal.user, &body.email, cx.client_ip())
        .await?;
    me_view(cx, user).await
}

pub(super) async fn change_password(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let body = PasswordChangeBody::read(cx.input(false)?)?;
    cx.app
        .accounts()
        .change_password(
            &principal,
            &body.old_password,
            &body.new_password,
            cx.client_ip(),
        )
        .await?;
    Ok(ok(&serde_json::json!({"status": "ok"})))
}

pub(super) async fn settings(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    Ok(ok(&SettingsView::from(
        cx.app.settings().settings_of(&principal.user).await?,
    )))
}

pub(super) async fn update_settings(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let patch = SettingsPatchBody::read(cx.input(false)?)?.into();
    let settings = cx
        .app
        .settings()
        .update_settings(&principal.user, &patch)
        .await?;
    Ok(ok(&SettingsView::from(settings)))
}

/// `GET /auth/email/revert?token=...`: the page the link mailed after an e-mail change opens.
/// It changes nothing: its button POSTs the token, so a mail scanner that fetches every link
/// cannot spend it.
pub(super) async fn email_revert_page(cx: &Ctx<'_>) -> Reply {
    let mut query = cx.query();
    let token = query.optional_string("token", MailedToken::MAX_CHARS);
    query.finish()?;
    let token = token.ok_or_else(|| {
        ApiError::Validation(vec![FieldError::new(
            &["query", "token"],
            "missing",
            "Field required",
        )])
    })?;
    let form = format!(
        "<p>The e-mail address of your MelodyHue account was changed. If you did not make this \
         change, restore the previous address: every session of the account will be signed \
         out.</p>\n\
         <form method=\"post\" action=\"revert\">\n\
         <input type=\"hidden\" name=\"token\" value=\"{}\">\n\
         <button type=\"submit\">Restore my previous address</button>\n\
         </form>",
        html_escape::encode_double_quoted_attribute(&token)
    );
    Ok(html_page(StatusCode::OK, &form))
}

/// `POST /auth/email/revert`: undoes an e-mail change with the mailed token, sent as the
/// page's form (answered with a page) or as JSON `{token}` (answered with JSON).
pub(super) async fn email_revert(cx: &Ctx<'_>) -> Reply {
    let is_form = cx
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(super::csrf::is_form);
    if !is_form {
        let body = TokenBody::read(cx.input(false)?)?;
        cx.app.recovery().revert_email_change(&body.token).await?;
        return Ok(ok(&serde_json::json!({"status": "ok"})));
    }
    let token = url::form_urlencoded::parse(&cx.body)
        .find(|(name, _)| name == "token")
        .and_then(|(_, value)| MailedToken::parse(value).ok());
    let Some(token) = token else {
        return Ok(html_page(
            StatusCode::BAD_REQUEST,
            "<p>This link is incomplete. Open the link of the e-mail again.</p>",
        ));
    };
    Ok(match cx.app.recovery().revert_email_change(&token).await {
        Ok(()) => html_page(
            StatusCode::OK,
            "<p>Your previous address is restored and every session of the account is signed \
             out. If the password was changed meanwhile, ask for a password reset from the \
             login page.</p>",
        ),
        Err(Error::Rejected(_)) => html_page(
            StatusCode::BAD_REQUEST,
            "<p>This link is invalid, expired or already used.</p>",
        ),
        Err(Error::Conflict(_)) => html_page(
            StatusCode::CONFLICT,
            "<p>Another account uses your previous address now, so it cannot be restored. \
             Please contact support.</p>",
        ),
        Err(other) => return Err(other.into()),
    })
}

/// A small self-contained page: no scripts, no external resources, never cached, never
/// framed, and the token in its address never sent on as a referrer.
fn html_page(status: StatusCode, body: &str) -> Response<Bytes> {
    let page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>MelodyHue: e-mail address</title></head>\n\
         <body style=\"font-family: sans-serif; line-height: 1.5; max-width: 40em; margin: 2em auto\">\n\
         <h1>MelodyHue</h1>\n{body}\n</body></html>\n"
    );
    let mut response = Response::new(Bytes::from(page));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-type", "text/html; charset=utf-8"),
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
