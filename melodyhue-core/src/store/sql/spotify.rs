//! Spotify credentials and authorizations: [`SpotifyStore`].

use super::*;

#[async_trait]
impl SpotifyStore for SqlStore {
    async fn spotify_credentials(&self, user_id: &str) -> StoreResult<Option<SpotifyCredentials>> {
        let row = on_pool!(self, |pool, d| {
            sqlx::query_as::<_, SpotifyRow>(d.q(
                "SELECT s.client_id, s.client_secret, t.refresh_token FROM api_users u \
                 LEFT JOIN api_spotify_secrets s ON s.user_id = u.id \
                 LEFT JOIN api_spotify_tokens t ON t.user_id = u.id WHERE u.id = ?",
            ))
            .bind(user_id)
            .fetch_optional(pool)
            .await
        })
        .map_err(map_err)?;
        Ok(row.map(|row| SpotifyCredentials {
            client_id: row.client_id,
            client_secret_encrypted: row.client_secret,
            refresh_token_encrypted: row.refresh_token,
        }))
    }

    async fn update_spotify_credentials(
        &self,
        user_id: &str,
        patch: &SpotifyCredentialsPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<SpotifyCredentials> {
        let app_changes = patch.client_id.is_some() || patch.client_secret_encrypted.is_some();
        let token_changes = patch.refresh_token_encrypted.is_some();
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            // Rows that will be written exist before they are read and locked, so concurrent
            // first patches serialize on them instead of both inserting. Locks are taken in
            // one order (app, then token) so two patches never wait on each other in a cycle.
            if app_changes {
                sqlx::query(d.q_owned(d.insert_if_absent(
                    "INSERT INTO api_spotify_secrets (user_id, updated_at) VALUES (?, ?)",
                    "user_id",
                )))
                .bind(user_id)
                .bind(naive(now))
                .execute(&mut *tx)
                .await?;
            }
            let secrets: Option<(Option<String>, Option<String>)> = sqlx::query_as(d.q_owned(format!(
                "SELECT client_id, client_secret FROM api_spotify_secrets WHERE user_id = ?{}",
                d.for_update()
            )))
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
            if token_changes {
                sqlx::query(d.q_owned(d.insert_if_absent(
                    "INSERT INTO api_spotify_tokens (user_id, updated_at) VALUES (?, ?)",
                    "user_id",
                )))
                .bind(user_id)
                .bind(naive(now))
                .execute(&mut *tx)
                .await?;
            }
            let token: Option<Option<String>> = sqlx::query_scalar(d.q_owned(format!(
                "SELECT refresh_token FROM api_spotify_tokens WHERE user_id = ?{}",
                d.for_update()
            )))
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
            let (old_id, old_secret) = secrets.unwrap_or_default();
            let next = SpotifyCredentials {
                client_id: patch.client_id.clone().unwrap_or(old_id),
                client_secret_encrypted: patch.client_secret_encrypted.clone().unwrap_or(old_secret),
                refresh_token_encrypted: patch
                    .refresh_token_encrypted
                    .clone()
                    .unwrap_or_else(|| token.flatten()),
            };
            if app_changes {
                sqlx::query(d.q(
                    "UPDATE api_spotify_secrets SET client_id = ?, client_secret = ?, updated_at = ? WHERE user_id = ?",
                ))
                .bind(next.client_id.as_deref())
                .bind(next.client_secret_encrypted.as_deref())
                .bind(naive(now))
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            }
            if token_changes {
                sqlx::query(d.q(
                    "UPDATE api_spotify_tokens SET refresh_token = ?, updated_at = ? WHERE user_id = ?",
                ))
                .bind(next.refresh_token_encrypted.as_deref())
                .bind(naive(now))
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(next)
        })
        .map_err(map_err)
    }

    async fn replace_spotify_refresh_token(
        &self,
        user_id: &str,
        expected: &str,
        new: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            // Compared here rather than in SQL: MySQL's column collation ignores case, and
            // Fernet tokens are case-sensitive.
            let stored: Option<Option<String>> = sqlx::query_scalar(d.q_owned(format!(
                "SELECT refresh_token FROM api_spotify_tokens WHERE user_id = ?{}",
                d.for_update()
            )))
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
            if stored.flatten().as_deref() != Some(expected) {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(d.q(
                "UPDATE api_spotify_tokens SET refresh_token = ?, updated_at = ? WHERE user_id = ?",
            ))
            .bind(new)
            .bind(naive(now))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(true)
        })
        .map_err(map_err)
    }

    async fn insert_spotify_authorization(
        &self,
        authorization: &SpotifyAuthorization,
        max_per_user: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            sqlx::query(d.q("DELETE FROM api_spotify_authorizations WHERE expires_at <= ?"))
                .bind(naive(now))
                .execute(&mut *tx)
                .await?;
            sqlx::query(d.q(
                "INSERT INTO api_spotify_authorizations (state_hash, user_id, redirect_uri, created_at, expires_at) \
                 VALUES (?, ?, ?, ?, ?)",
            ))
            .bind(&authorization.state_hash)
            .bind(&authorization.user_id)
            .bind(&authorization.redirect_uri)
            .bind(naive(authorization.created_at))
            .bind(naive(authorization.expires_at))
            .execute(&mut *tx)
            .await?;
            let newest_first: Vec<String> = sqlx::query_scalar(d.q(
                "SELECT state_hash FROM api_spotify_authorizations WHERE user_id = ? \
                 ORDER BY created_at DESC, state_hash DESC",
            ))
            .bind(&authorization.user_id)
            .fetch_all(&mut *tx)
            .await?;
            let keep = usize::try_from(max_per_user).unwrap_or(usize::MAX);
            for state_hash in newest_first.iter().skip(keep) {
                sqlx::query(d.q("DELETE FROM api_spotify_authorizations WHERE state_hash = ?"))
                    .bind(state_hash)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })
        .map_err(map_err)
    }

    async fn take_spotify_authorization(
        &self,
        user_id: &str,
        state_hash: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SpotifyAuthorization>> {
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            let columns = "SELECT state_hash, user_id, redirect_uri, created_at, expires_at \
                           FROM api_spotify_authorizations WHERE user_id = ? AND expires_at > ?";
            let found = match state_hash {
                Some(state_hash) => {
                    sqlx::query_as::<_, SpotifyAuthorizationRow>(
                        d.q_owned(format!("{columns} AND state_hash = ?{}", d.for_update())),
                    )
                    .bind(user_id)
                    .bind(naive(now))
                    .bind(state_hash)
                    .fetch_optional(&mut *tx)
                    .await?
                }
                None => {
                    sqlx::query_as::<_, SpotifyAuthorizationRow>(d.q_owned(format!(
                        "{columns} ORDER BY created_at DESC, state_hash DESC LIMIT 1{}",
                        d.for_update()
                    )))
                    .bind(user_id)
                    .bind(naive(now))
                    .fetch_optional(&mut *tx)
                    .await?
                }
            };
            let Some(found) = found else {
                tx.rollback().await?;
                return Ok(None);
            };
            // The delete decides: of callers that read the row before it went, one deletes it.
            let deleted =
                sqlx::query(d.q("DELETE FROM api_spotify_authorizations WHERE state_hash = ?"))
                    .bind(&found.state_hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if deleted == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Some(SpotifyAuthorization::from(found)))
        })
        .map_err(map_err)
    }
}
