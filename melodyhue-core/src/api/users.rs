//! `/users/me...` and `/settings/me`: the caller's own account and settings.

use md5::{Digest, Md5};
use serde::Serialize;

use super::response::{ok, rfc3339};
use super::{Ctx, Reply};
use crate::model::{Settings, SettingsPatch, User};
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
    Ok(ok(&MeView::from(cx.app.profile(user).await?)))
}

pub(super) async fn me(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    me_view(cx, principal.user).await
}

pub(super) async fn delete_me(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    cx.app.delete_account(&principal.user).await?;
    Ok(ok(&serde_json::json!({"status": "deleted"})))
}

pub(super) async fn change_username(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let mut input = cx.input(false)?;
    let username = input.string("username", 3..=80);
    input.finish()?;
    let user = cx.app.change_username(&principal.user, &username).await?;
    me_view(cx, user).await
}

pub(super) async fn change_email(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let mut input = cx.input(false)?;
    let email = input.email("email");
    input.finish()?;
    let user = cx.app.change_email(&principal.user, &email).await?;
    me_view(cx, user).await
}

pub(super) async fn change_password(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let mut input = cx.input(false)?;
    let old_password = input.string("old_password", 1..=1024);
    let new_password = input.string("new_password", 8..=128);
    input.finish()?;
    cx.app
        .change_password(&principal, &old_password, &new_password, cx.client_ip())
        .await?;
    Ok(ok(&serde_json::json!({"status": "ok"})))
}

pub(super) async fn settings(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    Ok(ok(&SettingsView::from(
        cx.app.settings_of(&principal.user).await?,
    )))
}

pub(super) async fn update_settings(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let mut input = cx.input(false)?;
    let theme = input.optional_string("theme", 1..=32);
    let layout = input.optional_string("layout", 1..=32);
    let avatar_mode = input.optional_string("avatar_mode", 1..=32);
    let avatar_color = input.optional_color("avatar_color");
    // The earlier frontend sent the fallback color under three names; the first given wins.
    let mut default_overlay_color = None;
    for alias in [
        "default_overlay_color",
        "default_color_overlays",
        "default_color_hex",
    ] {
        let color = input.optional_color(alias);
        default_overlay_color = default_overlay_color.or(color);
    }
    input.finish()?;
    let patch = SettingsPatch {
        theme,
        layout,
        default_overlay_color,
        avatar_mode,
        avatar_color,
    };
    let settings = cx.app.update_settings(&principal.user, &patch).await?;
    Ok(ok(&SettingsView::from(settings)))
}
