//! [`ModerationStore`] for [`MemoryStore`]: warnings, bans and the purge of banned accounts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use melodyhue_core::model::{Ban, Warning, WarningView};
use melodyhue_core::store::{
    BanOutcome, ListQuery, ModerationStore, Page, StoreError, StoreResult,
};

use super::{MemoryStore, newest_first_page};

#[async_trait]
impl ModerationStore for MemoryStore {
    async fn insert_warning(&self, warning: &Warning) -> StoreResult<()> {
        let mut state = self.state();
        state.require_user(&warning.user_id)?;
        if state.warnings.contains_key(&warning.id) {
            return Err(StoreError::AlreadyExists("id"));
        }
        state.warnings.insert(warning.id.clone(), warning.clone());
        Ok(())
    }

    async fn list_warnings(
        &self,
        user_id: Option<&str>,
        query: &ListQuery,
    ) -> StoreResult<Page<WarningView>> {
        let state = self.state();
        let matching = state
            .warnings
            .values()
            .filter(|w| user_id.is_none_or(|id| w.user_id == id))
            .map(|w| {
                let user = state.users.get(&w.user_id);
                let moderator = w.moderator_id.as_ref().and_then(|id| state.users.get(id));
                WarningView {
                    warning: w.clone(),
                    user_username: user.map(|u| u.username.clone()),
                    user_email: user.map(|u| u.email.clone()),
                    moderator_username: moderator.map(|u| u.username.clone()),
                    moderator_email: moderator.map(|u| u.email.clone()),
                }
            })
            .filter(|view| {
                let w = &view.warning;
                let texts = [
                    Some(&w.reason),
                    Some(&w.id),
                    Some(&w.user_id),
                    w.moderator_id.as_ref(),
                    view.user_username.as_ref(),
                    view.moderator_username.as_ref(),
                ];
                let emails = [view.user_email.as_ref(), view.moderator_email.as_ref()];
                texts
                    .into_iter()
                    .flatten()
                    .any(|field| query.matches(field))
                    || emails
                        .into_iter()
                        .flatten()
                        .any(|email| query.matches_email(email))
            })
            .collect();
        Ok(newest_first_page(matching, query, |view| {
            (view.warning.created_at, view.warning.id.clone())
        }))
    }

    async fn delete_warning(&self, id: &str) -> StoreResult<bool> {
        Ok(self.state().warnings.remove(id).is_some())
    }

    async fn delete_user_warnings(&self, user_id: &str) -> StoreResult<u64> {
        let mut state = self.state();
        let before = state.warnings.len();
        state.warnings.retain(|_, w| w.user_id != user_id);
        Ok((before - state.warnings.len()) as u64)
    }

    async fn active_ban(&self, user_id: &str, now: DateTime<Utc>) -> StoreResult<Option<Ban>> {
        Ok(self.state().active_ban(user_id, now).cloned())
    }

    async fn ban_user(&self, ban: &Ban, now: DateTime<Utc>) -> StoreResult<BanOutcome> {
        let mut state = self.state();
        if !state.users.contains_key(&ban.user_id) {
            return Ok(BanOutcome::UserNotFound);
        }
        if state.active_ban(&ban.user_id, now).is_some() {
            return Ok(BanOutcome::AlreadyBanned);
        }
        state.bans.insert(ban.id.clone(), ban.clone());
        let revoked_sessions = state.delete_sessions(|s| s.user_id != ban.user_id);
        Ok(BanOutcome::Banned { revoked_sessions })
    }

    async fn revoke_ban(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        let mut revoked = false;
        for ban in self.state().bans.values_mut() {
            if ban.user_id == user_id && ban.is_active_at(now) {
                ban.revoked_at = Some(now);
                revoked = true;
            }
        }
        Ok(revoked.then_some(now))
    }

    async fn purgeable_users(&self, banned_before: DateTime<Utc>) -> StoreResult<Vec<String>> {
        let mut users: Vec<String> = self
            .state()
            .bans
            .values()
            .filter(|b| b.revoked_at.is_none() && b.until.is_none() && b.created_at < banned_before)
            .map(|b| b.user_id.clone())
            .collect();
        users.sort();
        users.dedup();
        Ok(users)
    }
}
