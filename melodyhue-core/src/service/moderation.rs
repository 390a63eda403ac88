//! Administration and moderation: roles, statistics, warnings, bans, and the staff's view of
//! users and overlays.
//!
//! Who may do what is decided here, so it holds for every caller (HTTP, command line, embedders):
//! - admins may do everything;
//! - moderators may list, warn, ban and edit users and overlays, but not act on an admin
//!   (edit, warn, ban, lift a ban, change an admin's overlay);
//! - nobody may ban themselves;
//! - the last admin cannot stop being one;
//! - users may do none of it.

use chrono::{DateTime, Utc};

use super::{Error, Result};
use crate::App;
use crate::cluster::changes::Change;
use crate::model::{
    Ban, Email, ModerationReason, Overlay, OverlayPatch, OwnedOverlay, Role, Stats, User,
    UserWithBan, Username, Warning, WarningView, canonical_email, new_id,
};
use crate::store::{BanOutcome, ListQuery, Page, RoleChange, UserListQuery};

const USER_NOT_FOUND: &str = "User not found";
const OVERLAY_NOT_FOUND: &str = "Overlay not found";
const WARNING_NOT_FOUND: &str = "Warning not found";
const NO_ACTIVE_BAN: &str = "No active ban";
const ALREADY_BANNED: &str = "User already banned";
const LAST_ADMIN: &str = "Cannot remove the last admin";
const BAN_IN_THE_PAST: &str = "Ban end must be in the future";

/// Something that happened to an account that other parts of the server react to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccountEvent {
    /// The user was banned and every session of theirs revoked: their open WebSockets get
    /// `force_logout` and are closed with code 4401.
    Banned {
        /// The banned user.
        user_id: String,
    },
}

/// What a ban did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanReceipt {
    /// The new ban's id.
    pub ban_id: String,
    /// How many sessions of the user were revoked.
    pub revoked_sessions: u64,
}

/// Refuses anyone but admins (`403 Forbidden`).
pub fn require_admin(actor: &User) -> Result<()> {
    match actor.role {
        Role::Admin => Ok(()),
        Role::Moderator | Role::User => Err(Error::Forbidden),
    }
}

/// Refuses anyone but moderators and admins (`403 Forbidden`).
pub fn require_moderator(actor: &User) -> Result<()> {
    if actor.role.is_moderator() {
        Ok(())
    } else {
        Err(Error::Forbidden)
    }
}

/// A moderator (or admin) acting on an account with role `target`: moderators leave admins alone.
fn require_authority_over(actor: &User, target: Role) -> Result<()> {
    require_moderator(actor)?;
    if target == Role::Admin && actor.role != Role::Admin {
        return Err(Error::Forbidden);
    }
    Ok(())
}

/// Moderation and administration: roles, warnings, bans, moderating profiles and overlays.
///
/// A view of an [`App`], from [`App::moderation`].
#[derive(Debug, Clone, Copy)]
pub struct Moderation<'a> {
    pub(crate) app: &'a App,
}

impl<'a> Moderation<'a> {
    /// Counts for the admin dashboard. Admins only.
    pub async fn admin_stats(self, actor: &User) -> Result<Stats> {
        require_admin(actor)?;
        Ok(self.app.inner().store.stats().await?)
    }

    /// Users newest first, searching username and e-mail. Admins only.
    pub async fn admin_users(self, actor: &User, query: &ListQuery) -> Result<Page<User>> {
        require_admin(actor)?;
        let page = self
            .app
            .inner()
            .store
            .list_users(
                &UserListQuery {
                    list: query.clone(),
                    banned: None,
                },
                self.app.now(),
            )
            .await?;
        Ok(Page {
            items: page.items.into_iter().map(|u| u.user).collect(),
            total: page.total,
        })
    }

    /// Changes a user's role. Admins only; the last admin cannot be demoted
    /// (`400 Cannot remove the last admin`).
    pub async fn change_role(self, actor: &User, user_id: &str, role: Role) -> Result<()> {
        require_admin(actor)?;
        self.set_role(user_id, role).await
    }

    /// Changes the role of the account with this e-mail, without an acting user: the command
    /// line's `melodyhue promote`, which is how the first admin is made.
    pub async fn promote(self, email: &str, role: Role) -> Result<User> {
        let store = &self.app.inner().store;
        let user = store
            .user_by_email(email.trim())
            .await?
            .ok_or(Error::NotFound(USER_NOT_FOUND))?;
        self.set_role(&user.id, role).await?;
        Ok(User { role, ..user })
    }

    async fn set_role(self, user_id: &str, role: Role) -> Result<()> {
        match self
            .app
            .inner()
            .store
            .set_role(user_id, role, self.app.now())
            .await?
        {
            RoleChange::Changed => Ok(()),
            RoleChange::UserNotFound => Err(Error::NotFound(USER_NOT_FOUND)),
            RoleChange::LastAdmin => Err(Error::Rejected(LAST_ADMIN)),
        }
    }

    /// Warnings newest first, of one user (`404 User not found` when unknown) or of everyone.
    /// Admins only.
    pub async fn admin_warnings(
        self,
        actor: &User,
        user_id: Option<&str>,
        query: &ListQuery,
    ) -> Result<Page<WarningView>> {
        require_admin(actor)?;
        if let Some(user_id) = user_id {
            self.user(user_id).await?;
        }
        Ok(self.app.inner().store.list_warnings(user_id, query).await?)
    }

    /// Deletes one warning (`404 Warning not found`). Admins only.
    pub async fn delete_warning(self, actor: &User, warning_id: &str) -> Result<()> {
        require_admin(actor)?;
        if self.app.inner().store.delete_warning(warning_id).await? {
            Ok(())
        } else {
            Err(Error::NotFound(WARNING_NOT_FOUND))
        }
    }

    /// Deletes every warning of a user; returns how many. Admins only.
    pub async fn delete_user_warnings(self, actor: &User, user_id: &str) -> Result<u64> {
        require_admin(actor)?;
        self.user(user_id).await?;
        Ok(self.app.inner().store.delete_user_warnings(user_id).await?)
    }

    /// Users newest first with their active ban, searching username and e-mail, optionally only
    /// banned or only unbanned ones. Moderators and admins.
    pub async fn moderation_users(
        self,
        actor: &User,
        query: &UserListQuery,
    ) -> Result<Page<UserWithBan>> {
        require_moderator(actor)?;
        Ok(self
            .app
            .inner()
            .store
            .list_users(query, self.app.now())
            .await?)
    }

    /// One user with their active ban. Moderators and admins.
    pub async fn moderation_user(self, actor: &User, user_id: &str) -> Result<UserWithBan> {
        require_moderator(actor)?;
        let user = self.user(user_id).await?;
        let active_ban = self
            .app
            .inner()
            .store
            .active_ban(user_id, self.app.now())
            .await?;
        Ok(UserWithBan { user, active_ban })
    }

    /// Changes a user's username and/or e-mail. Moderators (not on admins) and admins; a new
    /// address (by its canonical form) only by admins, and then mailed to the old one with the
    /// link that undoes it, as when users change their own. An `email` with the same canonical
    /// form as the current one is not a change (the moderation page sends the address back
    /// with every edit) and is ignored. `409` when the e-mail is registered or the username
    /// used by another account.
    pub async fn moderate_profile(
        self,
        actor: &User,
        user_id: &str,
        username: Option<&Username>,
        email: Option<&Email>,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<()> {
        require_moderator(actor)?;
        let target = self.user(user_id).await?;
        require_authority_over(actor, target.role)?;
        if let Some(username) = username {
            let taken = self
                .app
                .inner()
                .store
                .users_by_username(username)
                .await?
                .iter()
                .any(|other| other.id != target.id);
            if taken {
                return Err(Error::Conflict("Username already taken"));
            }
        }
        let new_email =
            email.filter(|email| canonical_email(email) != canonical_email(&target.email));
        match new_email {
            Some(email) => {
                require_admin(actor)?;
                self.app
                    .accounts()
                    .change_email_of(&target, email, username, client_ip)
                    .await?;
            }
            None if username.is_some() => {
                self.app
                    .accounts()
                    .update_profile(user_id, username.map(Username::as_str), None)
                    .await?;
            }
            None => {}
        }
        Ok(())
    }

    /// Warns a user. Moderators (not on admins) and admins.
    pub async fn warn_user(
        self,
        actor: &User,
        user_id: &str,
        reason: ModerationReason,
    ) -> Result<Warning> {
        require_moderator(actor)?;
        let target = self.user(user_id).await?;
        require_authority_over(actor, target.role)?;
        let warning = Warning {
            id: new_id(),
            user_id: target.id,
            moderator_id: Some(actor.id.clone()),
            reason: reason.into_string(),
            created_at: self.app.now(),
        };
        self.app.inner().store.insert_warning(&warning).await?;
        tracing::info!(moderator_id = %actor.id, user_id = %warning.user_id, warning_id = %warning.id, "user warned");
        Ok(warning)
    }

    /// Bans a user until `until` (`None`: for good), revoking every session of theirs and
    /// telling the realtime layer ([`AccountEvent::Banned`]). Moderators (not on admins) and
    /// admins; nobody bans themselves. `400 User already banned` when a ban is active.
    pub async fn ban(
        self,
        actor: &User,
        user_id: &str,
        reason: ModerationReason,
        until: Option<DateTime<Utc>>,
    ) -> Result<BanReceipt> {
        require_moderator(actor)?;
        if user_id == actor.id {
            return Err(Error::Forbidden);
        }
        let target = self.user(user_id).await?;
        require_authority_over(actor, target.role)?;
        let now = self.app.now();
        if until.is_some_and(|until| until <= now) {
            return Err(Error::Rejected(BAN_IN_THE_PAST));
        }
        let ban = Ban {
            id: new_id(),
            user_id: target.id,
            moderator_id: Some(actor.id.clone()),
            reason: reason.into_string(),
            created_at: now,
            until,
            revoked_at: None,
        };
        match self.app.inner().store.ban_user(&ban, now).await? {
            BanOutcome::Banned { revoked_sessions } => {
                tracing::info!(moderator_id = %actor.id, user_id = %ban.user_id, ban_id = %ban.id, revoked_sessions, "user banned");
                self.app.announce(Change::Banned {
                    user_id: ban.user_id,
                });
                Ok(BanReceipt {
                    ban_id: ban.id,
                    revoked_sessions,
                })
            }
            BanOutcome::AlreadyBanned => Err(Error::Rejected(ALREADY_BANNED)),
            BanOutcome::UserNotFound => Err(Error::NotFound(USER_NOT_FOUND)),
        }
    }

    /// Lifts a user's active ban; when it was lifted. Moderators (not on admins) and admins.
    /// `404 No active ban` when there is none.
    pub async fn revoke_ban(self, actor: &User, user_id: &str) -> Result<DateTime<Utc>> {
        require_moderator(actor)?;
        let target = self.user(user_id).await?;
        require_authority_over(actor, target.role)?;
        let revoked_at = self
            .app
            .inner()
            .store
            .revoke_ban(user_id, self.app.now())
            .await?
            .ok_or(Error::NotFound(NO_ACTIVE_BAN))?;
        tracing::info!(moderator_id = %actor.id, user_id, "ban lifted");
        Ok(revoked_at)
    }

    /// All overlays newest first, searching name, template, ids and owner name. Moderators and
    /// admins.
    pub async fn moderation_overlays(
        self,
        actor: &User,
        query: &ListQuery,
    ) -> Result<Page<OwnedOverlay>> {
        require_moderator(actor)?;
        Ok(self.app.inner().store.list_overlays(query).await?)
    }

    /// Any overlay. Moderators and admins.
    pub async fn moderation_overlay(self, actor: &User, overlay_id: &str) -> Result<Overlay> {
        require_moderator(actor)?;
        self.app.overlays().public_overlay(overlay_id).await
    }

    /// Changes any overlay (a moderator not an admin's). Moderators and admins.
    pub async fn moderate_overlay(
        self,
        actor: &User,
        overlay_id: &str,
        patch: &OverlayPatch,
    ) -> Result<Overlay> {
        self.overlay_under_authority(actor, overlay_id).await?;
        self.app.overlays().update_overlay(overlay_id, patch).await
    }

    /// Deletes any overlay (a moderator not an admin's). Moderators and admins.
    pub async fn moderate_overlay_delete(self, actor: &User, overlay_id: &str) -> Result<()> {
        self.overlay_under_authority(actor, overlay_id).await?;
        self.app.overlays().delete_overlay(overlay_id).await
    }

    async fn overlay_under_authority(self, actor: &User, overlay_id: &str) -> Result<()> {
        require_moderator(actor)?;
        let overlay = self.app.overlays().public_overlay(overlay_id).await?;
        if actor.role != Role::Admin {
            // An overlay whose owner is gone is deleted with them; treat a race as not found.
            let owner = self
                .app
                .inner()
                .store
                .user_by_id(&overlay.owner_id)
                .await?
                .ok_or(Error::NotFound(OVERLAY_NOT_FOUND))?;
            require_authority_over(actor, owner.role)?;
        }
        Ok(())
    }

    async fn user(self, user_id: &str) -> Result<User> {
        self.app
            .inner()
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(Error::NotFound(USER_NOT_FOUND))
    }
}
