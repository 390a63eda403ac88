//! `/modo/...`: users (with bans), warnings, bans and overlays, for moderators and admins.
//! Others get `403 Forbidden`; so does a moderator acting on an admin, and anyone banning
//! themselves.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::admin::{PageView, list_query};
use super::bodies::{BanBody, ModeratedUserPatchBody, WarnBody};
use super::overlays::{OverlayView, overlay_body};
use super::response::{ok, rfc3339, timestamp};
use super::{ApiError, Ctx, Reply, path_id};
use crate::model::{OwnedOverlay, User, UserWithBan};
use crate::service::require_moderator;
use crate::store::UserListQuery;

const USER_NOT_FOUND: &str = "User not found";
const OVERLAY_NOT_FOUND: &str = "Overlay not found";

/// A user as moderators see them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModeratedUserView {
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
    /// Whether a ban is active now.
    pub is_banned: bool,
    /// The active ban's reason.
    pub ban_reason: Option<String>,
    /// The active ban's end; `null` when permanent or not banned.
    #[serde(with = "rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ban_until: Option<DateTime<Utc>>,
}

impl From<UserWithBan> for ModeratedUserView {
    fn from(u: UserWithBan) -> Self {
        let ban = u.active_ban;
        ModeratedUserView {
            id: u.user.id,
            username: u.user.username,
            email: u.user.email,
            role: u.user.role.as_str(),
            created_at: u.user.created_at,
            last_login_at: u.user.last_login_at,
            is_banned: ban.is_some(),
            ban_until: ban.as_ref().and_then(|b| b.until),
            ban_reason: ban.map(|b| b.reason),
        }
    }
}

/// An overlay in `/modo/overlays`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModeratedOverlayView {
    /// Id.
    pub id: String,
    /// Owner.
    pub owner_id: String,
    /// Owner's name.
    pub owner_username: String,
    /// Name.
    pub name: String,
    /// Template.
    pub template: String,
    /// Creation.
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl From<OwnedOverlay> for ModeratedOverlayView {
    fn from(o: OwnedOverlay) -> Self {
        ModeratedOverlayView {
            id: o.overlay.id,
            owner_id: o.overlay.owner_id,
            owner_username: o.owner_username,
            name: o.overlay.name,
            template: o.overlay.template,
            created_at: o.overlay.created_at,
            updated_at: o.overlay.updated_at,
        }
    }
}

/// The caller, when a moderator or admin: `401` without valid credentials, `403 Forbidden`
/// for users. Checked before the request is validated, as FastAPI's dependencies are.
async fn moderator(cx: &Ctx<'_>) -> Result<User, ApiError> {
    let principal = cx.principal().await?;
    require_moderator(&principal.user)?;
    Ok(principal.user)
}

pub(super) async fn users(cx: &Ctx<'_>) -> Reply {
    let actor = moderator(cx).await?;
    let mut params = cx.query();
    let list = params.list_query();
    let banned = params.optional_bool("banned");
    params.finish()?;
    let query = UserListQuery { list, banned };
    let page = cx.app.moderation().moderation_users(&actor, &query).await?;
    Ok(ok(&PageView::<ModeratedUserView>::new(page, &query.list)))
}

pub(super) async fn user(cx: &Ctx<'_>, id: &str) -> Reply {
    let actor = moderator(cx).await?;
    let user = cx
        .app
        .moderation()
        .moderation_user(&actor, path_id(id, USER_NOT_FOUND)?)
        .await?;
    Ok(ok(&ModeratedUserView::from(user)))
}

pub(super) async fn update_user(cx: &Ctx<'_>, id: &str) -> Reply {
    let actor = moderator(cx).await?;
    let body = ModeratedUserPatchBody::read(cx.input(false)?)?;
    cx.app
        .moderation()
        .moderate_profile(
            &actor,
            path_id(id, USER_NOT_FOUND)?,
            body.username.as_ref(),
            body.email.as_ref(),
            cx.client_ip(),
        )
        .await?;
    Ok(ok(&json!({"status": "ok"})))
}

pub(super) async fn warn(cx: &Ctx<'_>, id: &str) -> Reply {
    let actor = moderator(cx).await?;
    let body = WarnBody::read(cx.input(false)?)?;
    let warning = cx
        .app
        .moderation()
        .warn_user(&actor, path_id(id, USER_NOT_FOUND)?, body.reason)
        .await?;
    Ok(ok(&json!({"status": "ok", "warning_id": warning.id})))
}

pub(super) async fn ban(cx: &Ctx<'_>, id: &str) -> Reply {
    let actor = moderator(cx).await?;
    let body = BanBody::read(cx.input(false)?, cx.app.now())?;
    let receipt = cx
        .app
        .moderation()
        .ban(
            &actor,
            path_id(id, USER_NOT_FOUND)?,
            body.reason,
            body.until,
        )
        .await?;
    Ok(ok(&json!({
        "status": "ok",
        "ban_id": receipt.ban_id,
        "revoked_sessions": receipt.revoked_sessions,
    })))
}

pub(super) async fn revoke_ban(cx: &Ctx<'_>, id: &str) -> Reply {
    let actor = moderator(cx).await?;
    let revoked_at = cx
        .app
        .moderation()
        .revoke_ban(&actor, path_id(id, USER_NOT_FOUND)?)
        .await?;
    Ok(ok(
        &json!({"status": "ok", "revoked_at": timestamp(revoked_at)}),
    ))
}

pub(super) async fn overlays(cx: &Ctx<'_>) -> Reply {
    let actor = moderator(cx).await?;
    let query = list_query(cx)?;
    let page = cx
        .app
        .moderation()
        .moderation_overlays(&actor, &query)
        .await?;
    Ok(ok(&PageView::<ModeratedOverlayView>::new(page, &query)))
}

pub(super) async fn overlay(cx: &Ctx<'_>, id: &str) -> Reply {
    let actor = moderator(cx).await?;
    let overlay = cx
        .app
        .moderation()
        .moderation_overlay(&actor, path_id(id, OVERLAY_NOT_FOUND)?)
        .await?;
    Ok(ok(&OverlayView::from(overlay)))
}

pub(super) async fn update_overlay(cx: &Ctx<'_>, id: &str) -> Reply {
    let actor = moderator(cx).await?;
    let patch = overlay_body(cx)?.into();
    let overlay = cx
        .app
        .moderation()
        .moderate_overlay(&actor, path_id(id, OVERLAY_NOT_FOUND)?, &patch)
        .await?;
    Ok(ok(&OverlayView::from(overlay)))
}

pub(super) async fn delete_overlay(cx: &Ctx<'_>, id: &str) -> Reply {
    let actor = moderator(cx).await?;
    cx.app
        .moderation()
        .moderate_overlay_delete(&actor, path_id(id, OVERLAY_NOT_FOUND)?)
        .await?;
    Ok(ok(&json!({"status": "ok"})))
}
