//! Refresh sessions: [`SessionStore`].

use super::*;

/// The `INSERT` of a session row. A macro because the query's types differ per dialect.
macro_rules! insert_session {
    ($d:expr, $session:expr) => {
        sqlx::query($d.q("INSERT INTO api_user_sessions \
             (id, user_id, token_hash, family_id, created_at, expires_at, rotated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)"))
        .bind(&$session.id)
        .bind(&$session.user_id)
        .bind(&$session.token_hash)
        .bind(&$session.family_id)
        .bind(naive($session.created_at))
        .bind(naive($session.expires_at))
        .bind($session.rotated_at.map(naive))
    };
}

macro_rules! session_columns {
    () => {
        "id, user_id, token_hash, family_id, created_at, expires_at, rotated_at"
    };
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        on_pool!(self, |pool, d| {
            insert_session!(d, session).execute(pool).await.map(drop)
        })
        .map_err(map_err)
    }

    async fn session_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Session>> {
        let row = on_pool!(self, |pool, d| {
            sqlx::query_as::<_, SessionRow>(d.q(concat!(
                "SELECT ",
                session_columns!(),
                " FROM api_user_sessions WHERE token_hash = ? AND family_id IS NOT NULL"
            )))
            .bind(token_hash)
            .fetch_optional(pool)
            .await
        })
        .map_err(map_err)?;
        Ok(row.map(Session::from))
    }

    async fn rotate_session(
        &self,
        old_token_hash: &str,
        new: &Session,
        now: DateTime<Utc>,
        forget_rotated_before: DateTime<Utc>,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            // The conditional update is the claim: of concurrent rotations, one matches the row.
            let claimed = sqlx::query(d.q("UPDATE api_user_sessions SET rotated_at = ? \
                 WHERE token_hash = ? AND family_id = ? AND rotated_at IS NULL"))
            .bind(naive(now))
            .bind(old_token_hash)
            .bind(&new.family_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            insert_session!(d, new).execute(&mut *tx).await?;
            sqlx::query(d.q("DELETE FROM api_user_sessions \
                 WHERE family_id = ? AND rotated_at IS NOT NULL AND rotated_at < ?"))
            .bind(&new.family_id)
            .bind(naive(forget_rotated_before))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(true)
        })
        .map_err(map_err)
    }

    async fn live_session(&self, family_id: &str) -> StoreResult<Option<Session>> {
        let row = on_pool!(self, |pool, d| {
            sqlx::query_as::<_, SessionRow>(d.q(concat!(
                "SELECT ",
                session_columns!(),
                " FROM api_user_sessions WHERE family_id = ? AND rotated_at IS NULL \
                 ORDER BY created_at DESC, id DESC LIMIT 1"
            )))
            .bind(family_id)
            .fetch_optional(pool)
            .await
        })
        .map_err(map_err)?;
        Ok(row.map(Session::from))
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<bool> {
        self.delete_sessions_where("token_hash = ?", token_hash)
            .await
            .map(|n| n > 0)
    }

    async fn delete_session_family(&self, family_id: &str) -> StoreResult<u64> {
        self.delete_sessions_where("family_id = ?", family_id).await
    }

    async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<u64> {
        self.delete_sessions_where("user_id = ?", user_id).await
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        on_pool!(self, |pool, d| {
            sqlx::query(d.q("DELETE FROM api_user_sessions WHERE expires_at < ?"))
                .bind(naive(now))
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(map_err)
    }
}

impl SqlStore {
    async fn delete_sessions_where(
        &self,
        condition: &'static str,
        value: &str,
    ) -> StoreResult<u64> {
        on_pool!(self, |pool, d| {
            sqlx::query(d.q_owned(format!("DELETE FROM api_user_sessions WHERE {condition}")))
                .bind(value)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(map_err)
    }
}
