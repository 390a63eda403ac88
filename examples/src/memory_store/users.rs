//! [`UserStore`] for [`MemoryStore`]: accounts, their identity and roles, and the statistics.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use melodyhue_core::model::{EmailRevert, Role, Stats, User, UserWithBan, canonical_email};
use melodyhue_core::store::{Page, RoleChange, StoreError, StoreResult, UserListQuery, UserStore};

use super::{MemoryStore, newest_first_page};

#[async_trait]
impl UserStore for MemoryStore {
    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let mut state = self.state();
        if state.email_taken(&user.email, None) {
            return Err(StoreError::AlreadyExists("email"));
        }
        if state.users.contains_key(&user.id) {
            return Err(StoreError::AlreadyExists("id"));
        }
        state.users.insert(user.id.clone(), user.clone());
        Ok(())
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        Ok(self.state().users.get(id).cloned())
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let email = canonical_email(email);
        Ok(self
            .state()
            .users
            .values()
            .find(|u| canonical_email(&u.email) == email)
            .cloned())
    }

    async fn users_by_username(&self, username: &str) -> StoreResult<Vec<User>> {
        let mut users: Vec<User> = self
            .state()
            .users
            .values()
            .filter(|u| u.username == username)
            .cloned()
            .collect();
        users.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(users)
    }

    async fn update_profile(
        &self,
        id: &str,
        username: Option<&str>,
        email: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut state = self.state();
        if email.is_some_and(|email| state.email_taken(email, Some(id))) {
            return Err(StoreError::AlreadyExists("email"));
        }
        let Some(user) = state.users.get_mut(id) else {
            return Ok(false);
        };
        if let Some(username) = username {
            user.username = username.to_owned();
        }
        if let Some(email) = email {
            user.email = email.to_owned();
        }
        user.updated_at = now;
        Ok(true)
    }

    async fn change_email(
        &self,
        revert: &EmailRevert,
        username: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut state = self.state();
        if state.email_taken(&revert.new_email, Some(&revert.user_id)) {
            return Err(StoreError::AlreadyExists("email"));
        }
        let Some(user) = state.users.get_mut(&revert.user_id) else {
            return Ok(false);
        };
        if let Some(username) = username {
            user.username = username.to_owned();
        }
        user.email = revert.new_email.clone();
        user.updated_at = now;
        state
            .email_reverts
            .insert(revert.token_hash.clone(), (revert.clone(), None));
        Ok(true)
    }

    async fn update_password(
        &self,
        id: &str,
        password_hash: &str,
        keep_family: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut state = self.state();
        if let Some(user) = state.users.get_mut(id) {
            user.password_hash = password_hash.to_owned();
            user.updated_at = now;
        }
        state.invalidate_mailed_tokens(id, now);
        Ok(state.delete_sessions(|s| s.user_id != id || Some(s.family_id.as_str()) == keep_family))
    }

    async fn replace_password_hash(
        &self,
        id: &str,
        expected: &str,
        password_hash: &str,
    ) -> StoreResult<bool> {
        match self.state().users.get_mut(id) {
            Some(user) if user.password_hash == expected => {
                user.password_hash = password_hash.to_owned();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn record_login(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        if let Some(user) = self.state().users.get_mut(id) {
            user.last_login_at = Some(now);
        }
        Ok(())
    }

    async fn set_role(&self, id: &str, role: Role, now: DateTime<Utc>) -> StoreResult<RoleChange> {
        let mut state = self.state();
        let admins = state
            .users
            .values()
            .filter(|u| u.role == Role::Admin)
            .count();
        let Some(user) = state.users.get_mut(id) else {
            return Ok(RoleChange::UserNotFound);
        };
        if user.role == Role::Admin && role != Role::Admin && admins <= 1 {
            return Ok(RoleChange::LastAdmin);
        }
        user.role = role;
        user.updated_at = now;
        Ok(RoleChange::Changed)
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let mut state = self.state();
        if state.users.remove(id).is_none() {
            return Ok(false);
        }
        state.delete_sessions(|s| s.user_id != id);
        state.settings.remove(id);
        state.overlays.retain(|_, o| o.owner_id != id);
        state.two_factor.remove(id);
        state.challenges.retain(|_, c| c.user_id != id);
        state.tokens.retain(|_, t| t.token.user_id != id);
        state.email_reverts.retain(|_, (r, _)| r.user_id != id);
        state.spotify.remove(id);
        state.spotify_authorizations.retain(|_, a| a.user_id != id);
        state.warnings.retain(|_, w| w.user_id != id);
        state.bans.retain(|_, b| b.user_id != id);
        // What they did as a moderator stays, without a moderator.
        for warning in state.warnings.values_mut() {
            if warning.moderator_id.as_deref() == Some(id) {
                warning.moderator_id = None;
            }
        }
        for ban in state.bans.values_mut() {
            if ban.moderator_id.as_deref() == Some(id) {
                ban.moderator_id = None;
            }
        }
        Ok(true)
    }

    async fn list_users(
        &self,
        query: &UserListQuery,
        now: DateTime<Utc>,
    ) -> StoreResult<Page<UserWithBan>> {
        let state = self.state();
        let matching = state
            .users
            .values()
            .filter(|u| query.list.matches(&u.username) || query.list.matches_email(&u.email))
            .map(|u| UserWithBan {
                user: u.clone(),
                active_ban: state.active_ban(&u.id, now).cloned(),
            })
            .filter(|u| {
                query
                    .banned
                    .is_none_or(|banned| u.active_ban.is_some() == banned)
            })
            .collect();
        Ok(newest_first_page(matching, &query.list, |u| {
            (u.user.created_at, u.user.id.clone())
        }))
    }

    async fn stats(&self) -> StoreResult<Stats> {
        let state = self.state();
        let with_role = |role| state.users.values().filter(|u| u.role == role).count() as u64;
        Ok(Stats {
            users_count: state.users.len() as u64,
            overlays_count: state.overlays.len() as u64,
            moderators_count: with_role(Role::Moderator),
            admins_count: with_role(Role::Admin),
            active_2fa_count: state
                .two_factor
                .values()
                .filter(|t| t.verified_at.is_some())
                .count() as u64,
            last_user_registered_at: state.users.values().map(|u| u.created_at).max(),
        })
    }
}
