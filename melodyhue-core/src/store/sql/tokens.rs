//! Mailed one-time tokens and e-mail reverts: [`OneTimeTokenStore`].

use super::*;

/// Marks an unused, unexpired one-time token used inside a transaction; its user id, if it was
/// redeemable. A macro because the executor type differs per dialect.
macro_rules! consume_token {
    ($d:expr, $conn:expr, $table:literal, $hash:expr, $now:expr) => {{
        // The user's row is locked first, as every change of a user's password or tokens does,
        // so that redeeming several of one user's tokens at once queues instead of deadlocking
        // (each would hold its token and wait for the others while invalidating them).
        sqlx::query($d.q_owned(format!(
            concat!(
                "SELECT id FROM api_users WHERE id = (SELECT user_id FROM ",
                $table,
                " WHERE token = ?){}"
            ),
            $d.for_update()
        )))
        .bind($hash)
        .fetch_optional(&mut *$conn)
        .await?;
        let used = sqlx::query($d.q(concat!(
            "UPDATE ",
            $table,
            " SET used_at = ? WHERE token = ? AND used_at IS NULL AND expires_at > ?"
        )))
        .bind(naive($now))
        .bind($hash)
        .bind(naive($now))
        .execute(&mut *$conn)
        .await?
        .rows_affected();
        if used == 0 {
            None
        } else {
            sqlx::query_scalar::<_, String>($d.q(concat!(
                "SELECT user_id FROM ",
                $table,
                " WHERE token = ?"
            )))
            .bind($hash)
            .fetch_optional(&mut *$conn)
            .await?
        }
    }};
}

fn token_table(purpose: TokenPurpose) -> &'static str {
    match purpose {
        TokenPurpose::PasswordReset => "api_password_resets",
        TokenPurpose::TwoFactorDisable => "api_twofa_disable",
    }
}

#[async_trait]
impl OneTimeTokenStore for SqlStore {
    async fn insert_one_time_token(
        &self,
        purpose: TokenPurpose,
        token: &OneTimeToken,
    ) -> StoreResult<()> {
        let table = token_table(purpose);
        on_pool!(self, |pool, d| {
            sqlx::query(d.q_owned(format!(
                "INSERT INTO {table} (token, user_id, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, NULL)"
            )))
            .bind(&token.token_hash)
            .bind(&token.user_id)
            .bind(naive(token.created_at))
            .bind(naive(token.expires_at))
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(map_err)
    }

    async fn redeem_password_reset(
        &self,
        token_hash: &str,
        new_password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>> {
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            let Some(user_id) = consume_token!(d, &mut *tx, "api_password_resets", token_hash, now)
            else {
                tx.rollback().await?;
                return Ok(None);
            };
            sqlx::query(d.q("UPDATE api_users SET password_hash = ?, updated_at = ? WHERE id = ?"))
                .bind(new_password_hash)
                .bind(naive(now))
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(d.q("DELETE FROM api_twofa WHERE user_id = ?"))
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(d.q("DELETE FROM api_user_sessions WHERE user_id = ?"))
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
            invalidate_mailed_tokens!(d, &mut *tx, &user_id, now);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Some(user_id))
        })
        .map_err(map_err)
    }

    async fn redeem_two_factor_disable(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>> {
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            let Some(user_id) = consume_token!(d, &mut *tx, "api_twofa_disable", token_hash, now)
            else {
                tx.rollback().await?;
                return Ok(None);
            };
            sqlx::query(d.q("DELETE FROM api_twofa WHERE user_id = ?"))
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
            invalidate_mailed_tokens!(d, &mut *tx, &user_id, now);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Some(user_id))
        })
        .map_err(map_err)
    }

    async fn redeem_email_revert(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<EmailRevertOutcome> {
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            let revert: Option<(String, String, NaiveDateTime)> =
                sqlx::query_as(d.q_owned(format!(
                    "SELECT user_id, old_email, created_at FROM api_email_reverts \
                 WHERE token = ? AND used_at IS NULL AND expires_at > ?{}",
                    d.for_update()
                )))
                .bind(token_hash)
                .bind(naive(now))
                .fetch_optional(&mut *tx)
                .await?;
            let Some((user_id, old_email, created_at)) = revert else {
                tx.rollback().await?;
                return Ok(EmailRevertOutcome::Invalid);
            };
            let replaced: Option<String> = sqlx::query_scalar(d.q_owned(format!(
                "SELECT email FROM api_users WHERE id = ?{}",
                d.for_update()
            )))
            .bind(&user_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(replaced_email) = replaced else {
                tx.rollback().await?;
                return Ok(EmailRevertOutcome::Invalid);
            };
            let restored = sqlx::query(d.q(
                "UPDATE api_users SET email = ?, email_canonical = ?, updated_at = ? WHERE id = ?",
            ))
            .bind(&old_email)
            .bind(canonical_email(&old_email))
            .bind(naive(now))
            .bind(&user_id)
            .execute(&mut *tx)
            .await;
            match restored {
                Ok(_) => {}
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    tx.rollback().await?;
                    return Ok(EmailRevertOutcome::AddressTaken);
                }
                Err(err) => return Err(err),
            }
            // This revert and every later one are spent; earlier ones restore an even older
            // address and stay usable.
            sqlx::query(d.q("UPDATE api_email_reverts SET used_at = ? \
                 WHERE user_id = ? AND used_at IS NULL AND (token = ? OR created_at >= ?)"))
            .bind(naive(now))
            .bind(&user_id)
            .bind(token_hash)
            .bind(created_at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(d.q("DELETE FROM api_user_sessions WHERE user_id = ?"))
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
            invalidate_mailed_tokens!(d, &mut *tx, &user_id, now);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(EmailRevertOutcome::Reverted {
                user_id,
                restored_email: old_email,
                replaced_email,
            })
        })
        .map_err(map_err)
    }

    async fn delete_expired_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        on_pool!(self, |pool, d| {
            let mut deleted = 0;
            for table in [
                "api_password_resets",
                "api_twofa_disable",
                "api_email_reverts",
                "api_login_challenges",
            ] {
                deleted +=
                    sqlx::query(d.q_owned(format!("DELETE FROM {table} WHERE expires_at < ?")))
                        .bind(naive(now))
                        .execute(pool)
                        .await?
                        .rows_affected();
            }
            Ok::<_, sqlx::Error>(deleted)
        })
        .map_err(map_err)
    }
}
