//! [`SessionStore`] for [`MemoryStore`]: refresh-token sessions and their rotation.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use melodyhue_core::model::Session;
use melodyhue_core::store::{SessionStore, StoreError, StoreResult};

use super::MemoryStore;

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        let mut state = self.state();
        state.require_user(&session.user_id)?;
        if state.sessions.contains_key(&session.token_hash) {
            return Err(StoreError::AlreadyExists("id"));
        }
        state
            .sessions
            .insert(session.token_hash.clone(), session.clone());
        Ok(())
    }

    async fn session_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Session>> {
        Ok(self.state().sessions.get(token_hash).cloned())
    }

    async fn rotate_session(
        &self,
        old_token_hash: &str,
        new: &Session,
        now: DateTime<Utc>,
        forget_rotated_before: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut state = self.state();
        match state.sessions.get_mut(old_token_hash) {
            Some(old) if old.rotated_at.is_none() && old.family_id == new.family_id => {
                old.rotated_at = Some(now);
            }
            _ => return Ok(false),
        }
        state.sessions.insert(new.token_hash.clone(), new.clone());
        state.delete_sessions(|s| {
            s.family_id != new.family_id || s.rotated_at.is_none_or(|r| r >= forget_rotated_before)
        });
        Ok(true)
    }

    async fn live_session(&self, family_id: &str) -> StoreResult<Option<Session>> {
        Ok(self
            .state()
            .sessions
            .values()
            .filter(|s| s.family_id == family_id && s.rotated_at.is_none())
            .max_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
            .cloned())
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<bool> {
        Ok(self.state().sessions.remove(token_hash).is_some())
    }

    async fn delete_session_family(&self, family_id: &str) -> StoreResult<u64> {
        Ok(self.state().delete_sessions(|s| s.family_id != family_id))
    }

    async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<u64> {
        Ok(self.state().delete_sessions(|s| s.user_id != user_id))
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        Ok(self.state().delete_sessions(|s| s.expires_at >= now))
    }
}
