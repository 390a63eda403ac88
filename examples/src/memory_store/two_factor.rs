//! [`TwoFactorStore`] for [`MemoryStore`]: TOTP secrets and login challenges.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use melodyhue_core::model::{LoginChallenge, TwoFactor};
use melodyhue_core::store::{StoreError, StoreResult, TwoFactorStore};

use super::MemoryStore;

#[async_trait]
impl TwoFactorStore for MemoryStore {
    async fn two_factor(&self, user_id: &str) -> StoreResult<Option<TwoFactor>> {
        Ok(self.state().two_factor.get(user_id).cloned())
    }

    async fn save_pending_two_factor(
        &self,
        user_id: &str,
        secret_encrypted: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut state = self.state();
        state.require_user(user_id)?;
        state.two_factor.insert(
            user_id.to_owned(),
            TwoFactor {
                user_id: user_id.to_owned(),
                secret_encrypted: secret_encrypted.to_owned(),
                enabled_at: now,
                verified_at: None,
                last_used_step: None,
            },
        );
        Ok(())
    }

    async fn mark_two_factor_verified(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut state = self.state();
        let Some(two_factor) = state.two_factor.get_mut(user_id) else {
            return Ok(false);
        };
        two_factor.verified_at = Some(now);
        Ok(true)
    }

    async fn delete_two_factor(&self, user_id: &str) -> StoreResult<bool> {
        Ok(self.state().two_factor.remove(user_id).is_some())
    }

    async fn claim_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        let mut state = self.state();
        let Some(two_factor) = state.two_factor.get_mut(user_id) else {
            return Ok(false);
        };
        if two_factor.last_used_step.is_some_and(|last| last >= step) {
            return Ok(false);
        }
        two_factor.last_used_step = Some(step);
        Ok(true)
    }

    async fn insert_challenge(&self, challenge: &LoginChallenge) -> StoreResult<()> {
        let mut state = self.state();
        state.require_user(&challenge.user_id)?;
        if state.challenges.contains_key(&challenge.id) {
            return Err(StoreError::AlreadyExists("id"));
        }
        state
            .challenges
            .insert(challenge.id.clone(), challenge.clone());
        Ok(())
    }

    async fn challenge(&self, id: &str) -> StoreResult<Option<LoginChallenge>> {
        Ok(self.state().challenges.get(id).cloned())
    }

    async fn take_challenge_attempt(
        &self,
        id: &str,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        match self.state().challenges.get_mut(id) {
            Some(challenge)
                if challenge.used_at.is_none()
                    && challenge.expires_at > now
                    && challenge.attempts < max_attempts =>
            {
                challenge.attempts += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn consume_challenge(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let mut state = self.state();
        match state.challenges.get_mut(id) {
            Some(challenge) if challenge.used_at.is_none() && challenge.expires_at > now => {
                challenge.used_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
