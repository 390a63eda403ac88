//! [`OneTimeTokenStore`] for [`MemoryStore`]: mailed one-time tokens and e-mail reverts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use melodyhue_core::model::{EmailRevertOutcome, OneTimeToken, TokenPurpose};
use melodyhue_core::store::{OneTimeTokenStore, StoreError, StoreResult};

use super::{IssuedToken, MemoryStore};

#[async_trait]
impl OneTimeTokenStore for MemoryStore {
    async fn insert_one_time_token(
        &self,
        purpose: TokenPurpose,
        token: &OneTimeToken,
    ) -> StoreResult<()> {
        let mut state = self.state();
        state.require_user(&token.user_id)?;
        let key = (purpose, token.token_hash.clone());
        if state.tokens.contains_key(&key) {
            return Err(StoreError::AlreadyExists("id"));
        }
        state.tokens.insert(
            key,
            IssuedToken {
                token: token.clone(),
                used_at: None,
            },
        );
        Ok(())
    }

    async fn redeem_password_reset(
        &self,
        token_hash: &str,
        new_password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>> {
        let mut state = self.state();
        let Some(user_id) = state.consume_token(TokenPurpose::PasswordReset, token_hash, now)
        else {
            return Ok(None);
        };
        if let Some(user) = state.users.get_mut(&user_id) {
            user.password_hash = new_password_hash.to_owned();
            user.updated_at = now;
        }
        state.two_factor.remove(&user_id);
        state.delete_sessions(|s| s.user_id != user_id);
        state.invalidate_mailed_tokens(&user_id, now);
        Ok(Some(user_id))
    }

    async fn redeem_two_factor_disable(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>> {
        let mut state = self.state();
        let user_id = state.consume_token(TokenPurpose::TwoFactorDisable, token_hash, now);
        if let Some(user_id) = &user_id {
            state.two_factor.remove(user_id);
            state.invalidate_mailed_tokens(user_id, now);
        }
        Ok(user_id)
    }

    async fn redeem_email_revert(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<EmailRevertOutcome> {
        let mut state = self.state();
        let Some((revert, None)) = state.email_reverts.get(token_hash).cloned() else {
            return Ok(EmailRevertOutcome::Invalid);
        };
        if revert.expires_at <= now {
            return Ok(EmailRevertOutcome::Invalid);
        }
        if state.email_taken(&revert.old_email, Some(&revert.user_id)) {
            return Ok(EmailRevertOutcome::AddressTaken);
        }
        let Some(user) = state.users.get_mut(&revert.user_id) else {
            return Ok(EmailRevertOutcome::Invalid);
        };
        let replaced_email = std::mem::replace(&mut user.email, revert.old_email.clone());
        user.updated_at = now;
        // This revert and every later one are spent; earlier ones stay usable.
        for (hash, (other, used_at)) in &mut state.email_reverts {
            if other.user_id == revert.user_id
                && used_at.is_none()
                && (hash == token_hash || other.created_at >= revert.created_at)
            {
                *used_at = Some(now);
            }
        }
        state.delete_sessions(|s| s.user_id != revert.user_id);
        state.invalidate_mailed_tokens(&revert.user_id, now);
        Ok(EmailRevertOutcome::Reverted {
            user_id: revert.user_id,
            restored_email: revert.old_email,
            replaced_email,
        })
    }

    async fn delete_expired_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut state = self.state();
        let before = state.tokens.len() + state.email_reverts.len() + state.challenges.len();
        state.tokens.retain(|_, t| t.token.expires_at >= now);
        state.email_reverts.retain(|_, (r, _)| r.expires_at >= now);
        state.challenges.retain(|_, c| c.expires_at >= now);
        let after = state.tokens.len() + state.email_reverts.len() + state.challenges.len();
        Ok((before - after) as u64)
    }
}
