//! Two-factor authentication and login tickets: [`TwoFactorStore`].

use super::*;

#[async_trait]
impl TwoFactorStore for SqlStore {
    async fn two_factor(&self, user_id: &str) -> StoreResult<Option<TwoFactor>> {
        let row = on_pool!(self, |pool, d| {
            sqlx::query_as::<_, TwoFactorRow>(d.q(
                "SELECT user_id, secret, enabled_at, verified_at, last_used_step FROM api_twofa WHERE user_id = ?",
            ))
            .bind(user_id)
            .fetch_optional(pool)
            .await
        })
        .map_err(map_err)?;
        // A row without a secret cannot produce codes: treat it as no 2FA.
        Ok(row.and_then(|row| {
            Some(TwoFactor {
                user_id: row.user_id,
                secret_encrypted: row.secret?,
                enabled_at: utc(row.enabled_at),
                verified_at: row.verified_at.map(utc),
                last_used_step: row.last_used_step,
            })
        }))
    }

    async fn save_pending_two_factor(
        &self,
        user_id: &str,
        secret_encrypted: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            sqlx::query(d.q("DELETE FROM api_twofa WHERE user_id = ?"))
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(d.q(
                "INSERT INTO api_twofa (user_id, secret, enabled_at, verified_at, last_used_step) \
                 VALUES (?, ?, ?, NULL, NULL)",
            ))
            .bind(user_id)
            .bind(secret_encrypted)
            .bind(naive(now))
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })
        .map_err(map_err)
    }

    async fn mark_two_factor_verified(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool, d| {
            sqlx::query(d.q("UPDATE api_twofa SET verified_at = ? WHERE user_id = ?"))
                .bind(naive(now))
                .bind(user_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected() > 0)
        })
        .map_err(map_err)
    }

    async fn delete_two_factor(&self, user_id: &str) -> StoreResult<bool> {
        on_pool!(self, |pool, d| {
            sqlx::query(d.q("DELETE FROM api_twofa WHERE user_id = ?"))
                .bind(user_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected() > 0)
        })
        .map_err(map_err)
    }

    async fn claim_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        on_pool!(self, |pool, d| {
            sqlx::query(d.q("UPDATE api_twofa SET last_used_step = ? \
                 WHERE user_id = ? AND (last_used_step IS NULL OR last_used_step < ?)"))
            .bind(step)
            .bind(user_id)
            .bind(step)
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0)
        })
        .map_err(map_err)
    }

    async fn insert_challenge(&self, challenge: &LoginChallenge) -> StoreResult<()> {
        on_pool!(self, |pool, d| {
            sqlx::query(d.q(
                "INSERT INTO api_login_challenges (id, user_id, created_at, expires_at, used_at, failed_attempts) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            ))
            .bind(&challenge.id)
            .bind(&challenge.user_id)
            .bind(naive(challenge.created_at))
            .bind(naive(challenge.expires_at))
            .bind(challenge.used_at.map(naive))
            .bind(i32::try_from(challenge.attempts).unwrap_or(i32::MAX))
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(map_err)
    }

    async fn challenge(&self, id: &str) -> StoreResult<Option<LoginChallenge>> {
        let row = on_pool!(self, |pool, d| {
            sqlx::query_as::<_, ChallengeRow>(d.q(
                "SELECT id, user_id, created_at, expires_at, used_at, failed_attempts \
                 FROM api_login_challenges WHERE id = ?",
            ))
            .bind(id)
            .fetch_optional(pool)
            .await
        })
        .map_err(map_err)?;
        Ok(row.map(LoginChallenge::from))
    }

    async fn take_challenge_attempt(
        &self,
        id: &str,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        on_pool!(self, |pool, d| {
            sqlx::query(d.q(
                "UPDATE api_login_challenges SET failed_attempts = failed_attempts + 1 \
                 WHERE id = ? AND failed_attempts < ? AND used_at IS NULL AND expires_at > ?",
            ))
            .bind(id)
            .bind(max_attempts)
            .bind(naive(now))
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0)
        })
        .map_err(map_err)
    }

    async fn consume_challenge(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        on_pool!(self, |pool, d| {
            sqlx::query(d.q("UPDATE api_login_challenges SET used_at = ? \
                 WHERE id = ? AND used_at IS NULL AND expires_at > ?"))
            .bind(naive(now))
            .bind(id)
            .bind(naive(now))
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0)
        })
        .map_err(map_err)
    }
}
