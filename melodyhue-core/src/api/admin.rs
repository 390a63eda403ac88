//! `/admin/...`: statistics, users and roles, warnings. Role `admin`; others get `403 Forbidden`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::response::{ok, rfc3339};
use super::{ApiError, Ctx, Reply, path_id};
use crate::model::{Role, Stats, User, WarningView};
use crate::service::require_admin;
use crate::store::{ListQuery, Page};

const USER_NOT_FOUND: &str = "User not found";
const WARNING_NOT_FOUND: &str = "Warning not found";
const ROLES: [Role; 3] = [Role::User, Role::Moderator, Role::Admin];

/// One page of a list, as every staff list answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PageView<T> {
    /// The rows of the page, newest first.
    pub items: Vec<T>,
    /// How many rows match in all.
    pub total: u64,
    /// The page number asked for.
    pub page: u32,
    /// The page size asked for.
    pub page_size: u32,
}

impl<T> PageView<T> {
    /// `page` of `query`, each row converted to its view.
    pub fn new<U>(page: Page<U>, query: &ListQuery) -> Self
    where
        T: From<U>,
    {
        PageView {
            items: page.items.into_iter().map(T::from).collect(),
            total: page.total,
            page: query.page,
            page_size: query.page_size,
        }
    }
}

/// `/admin/stats`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsView {
    /// All accounts.
    pub users_count: u64,
    /// All overlays.
    pub overlays_count: u64,
    /// Moderators.
    pub moderators_count: u64,
    /// Admins.
    pub admins_count: u64,
    /// Accounts with verified 2FA.
    pub active_2fa_count: u64,
    /// Newest account's creation.
    #[serde(with = "rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_user_registered_at: Option<DateTime<Utc>>,
}

impl From<Stats> for StatsView {
    fn from(s: Stats) -> Self {
        StatsView {
            users_count: s.users_count,
            overlays_count: s.overlays_count,
            moderators_count: s.moderators_count,
            admins_count: s.admins_count,
            active_2fa_count: s.active_2fa_count,
            last_user_registered_at: s.last_user_registered_at,
        }
    }
}

/// A user in `/admin/users`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminUserView {
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
}

impl From<User> for AdminUserView {
    fn from(u: User) -> Self {
        AdminUserView {
            id: u.id,
            username: u.username,
            email: u.email,
            role: u.role.as_str(),
            created_at: u.created_at,
            last_login_at: u.last_login_at,
        }
    }
}

/// A warning in the admin lists.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WarningItemView {
    /// Id.
    pub id: String,
    /// The warned user.
    pub user_id: String,
    /// Their name.
    pub user_username: Option<String>,
    /// Their e-mail.
    pub user_email: Option<String>,
    /// Who warned (`null` once that account is deleted).
    pub moderator_id: Option<String>,
    /// Their name.
    pub moderator_username: Option<String>,
    /// Their e-mail.
    pub moderator_email: Option<String>,
    /// Why.
    pub reason: String,
    /// When.
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl From<WarningView> for WarningItemView {
    fn from(w: WarningView) -> Self {
        WarningItemView {
            id: w.warning.id,
            user_id: w.warning.user_id,
            user_username: w.user_username,
            user_email: w.user_email,
            moderator_id: w.warning.moderator_id,
            moderator_username: w.moderator_username,
            moderator_email: w.moderator_email,
            reason: w.warning.reason,
            created_at: w.warning.created_at,
        }
    }
}

/// The caller, when an admin: `401` without valid credentials, `403 Forbidden` for other roles.
/// Checked before the request is validated, as FastAPI's dependencies are.
async fn admin(cx: &Ctx<'_>) -> Result<User, ApiError> {
    let principal = cx.principal().await?;
    require_admin(&principal.user)?;
    Ok(principal.user)
}

/// The `page`, `page_size` and `search` of the query string.
pub(super) fn list_query(cx: &Ctx<'_>) -> Result<ListQuery, ApiError> {
    let mut query = cx.query();
    let list = query.list_query();
    query.finish()?;
    Ok(list)
}

pub(super) async fn stats(cx: &Ctx<'_>) -> Reply {
    let actor = admin(cx).await?;
    Ok(ok(&StatsView::from(
        cx.app.moderation().admin_stats(&actor).await?,
    )))
}

pub(super) async fn users(cx: &Ctx<'_>) -> Reply {
    let actor = admin(cx).await?;
    let query = list_query(cx)?;
    let page = cx.app.moderation().admin_users(&actor, &query).await?;
    Ok(ok(&PageView::<AdminUserView>::new(page, &query)))
}

pub(super) async fn change_role(cx: &Ctx<'_>, id: &str) -> Reply {
    let actor = admin(cx).await?;
    let mut input = cx.input(false)?;
    let role = input.choice("role", &ROLES.map(|role| (role.as_str(), role)));
    input.finish()?;
    let id = path_id(id, USER_NOT_FOUND)?;
    cx.app.moderation().change_role(&actor, id, role).await?;
    Ok(ok(
        &json!({"status": "ok", "user_id": id, "role": role.as_str()}),
    ))
}

pub(super) async fn warnings(cx: &Ctx<'_>) -> Reply {
    let actor = admin(cx).await?;
    let query = list_query(cx)?;
    let page = cx
        .app
        .moderation()
        .admin_warnings(&actor, None, &query)
        .await?;
    Ok(ok(&PageView::<WarningItemView>::new(page, &query)))
}

pub(super) async fn user_warnings(cx: &Ctx<'_>, id: &str) -> Reply {
    let actor = admin(cx).await?;
    let query = list_query(cx)?;
    let id = path_id(id, USER_NOT_FOUND)?;
    let page = cx
        .app
        .moderation()
        .admin_warnings(&actor, Some(id), &query)
        .await?;
    Ok(ok(&PageView::<WarningItemView>::new(page, &query)))
}

pub(super) async fn delete_warning(cx: &Ctx<'_>, id: &str) -> Reply {
    let actor = admin(cx).await?;
    let id = path_id(id, WARNING_NOT_FOUND)?;
    cx.app.moderation().delete_warning(&actor, id).await?;
    Ok(ok(&json!({"status": "ok", "deleted": 1, "warning_id": id})))
}

pub(super) async fn delete_user_warnings(cx: &Ctx<'_>, id: &str) -> Reply {
    let actor = admin(cx).await?;
    let id = path_id(id, USER_NOT_FOUND)?;
    let deleted = cx.app.moderation().delete_user_warnings(&actor, id).await?;
    Ok(ok(
        &json!({"status": "ok", "deleted": deleted, "user_id": id}),
    ))
}
