//! Roles, warnings and bans: [`ModerationStore`].

use super::*;

/// The columns a warning search looks in, and whether each is a canonical e-mail.
const WARNING_SEARCH_FIELDS: [(&str, bool); 8] = [
    ("w.reason", false),
    ("w.id", false),
    ("w.user_id", false),
    ("w.moderator_id", false),
    ("u.username", false),
    ("u.email_canonical", true),
    ("m.username", false),
    ("m.email_canonical", true),
];

/// The columns of a ban, qualified (MySQL accepts its keyword `until` only after a qualifier).
macro_rules! ban_columns {
    ($alias:literal) => {
        concat!(
            $alias,
            ".id, ",
            $alias,
            ".user_id, ",
            $alias,
            ".moderator_id, ",
            $alias,
            ".reason, ",
            $alias,
            ".created_at, ",
            $alias,
            ".until, ",
            $alias,
            ".revoked_at"
        )
    };
}

#[async_trait]
impl ModerationStore for SqlStore {
    async fn insert_warning(&self, warning: &Warning) -> StoreResult<()> {
        on_pool!(self, |pool, d| {
            sqlx::query(d.q(
                "INSERT INTO api_user_warnings (id, user_id, moderator_id, reason, created_at) VALUES (?, ?, ?, ?, ?)",
            ))
            .bind(&warning.id)
            .bind(&warning.user_id)
            .bind(warning.moderator_id.as_deref())
            .bind(&warning.reason)
            .bind(naive(warning.created_at))
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(map_err)
    }

    async fn list_warnings(
        &self,
        user_id: Option<&str>,
        query: &ListQuery,
    ) -> StoreResult<Page<WarningView>> {
        let pattern = query.like_pattern();
        let email_pattern = query.email_like_pattern();
        let (limit, offset) = limit_offset(query);
        let (rows, total) = on_pool!(self, |pool, d| {
            let mut from = String::from(
                " FROM api_user_warnings w LEFT JOIN api_users u ON u.id = w.user_id \
                 LEFT JOIN api_users m ON m.id = w.moderator_id WHERE 1 = 1",
            );
            if user_id.is_some() {
                from.push_str(" AND w.user_id = ?");
            }
            if pattern.is_some() {
                let like = d.ilike();
                // E-mails are searched by their canonical form, byte for byte.
                let conditions: Vec<String> = WARNING_SEARCH_FIELDS
                    .iter()
                    .map(|(field, is_email)| {
                        let like = if *is_email { "LIKE" } else { like };
                        format!("{field} {like} ? ESCAPE '!'")
                    })
                    .collect();
                from.push_str(&format!(" AND ({})", conditions.join(" OR ")));
            }
            let select = format!(
                "SELECT w.id, w.user_id, w.moderator_id, w.reason, w.created_at, \
                 u.username AS user_username, u.email AS user_email, \
                 m.username AS moderator_username, m.email AS moderator_email{from} \
                 ORDER BY w.created_at DESC, w.id DESC LIMIT ? OFFSET ?"
            );
            let mut rows = sqlx::query_as::<_, WarningRow>(d.q_owned(select));
            let mut total =
                sqlx::query_scalar::<_, i64>(d.q_owned(format!("SELECT COUNT(*){from}")));
            if let Some(user_id) = user_id {
                rows = rows.bind(user_id);
                total = total.bind(user_id);
            }
            if let (Some(pattern), Some(email_pattern)) = (&pattern, &email_pattern) {
                for (_, is_email) in WARNING_SEARCH_FIELDS {
                    let pattern = if is_email { email_pattern } else { pattern };
                    rows = rows.bind(pattern.clone());
                    total = total.bind(pattern.clone());
                }
            }
            let rows = rows.bind(limit).bind(offset).fetch_all(pool).await?;
            let total = total.fetch_one(pool).await?;
            Ok::<_, sqlx::Error>((rows, total))
        })
        .map_err(map_err)?;
        Ok(Page {
            items: rows.into_iter().map(WarningView::from).collect(),
            total: count(total),
        })
    }

    async fn delete_warning(&self, id: &str) -> StoreResult<bool> {
        on_pool!(self, |pool, d| {
            sqlx::query(d.q("DELETE FROM api_user_warnings WHERE id = ?"))
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected() > 0)
        })
        .map_err(map_err)
    }

    async fn delete_user_warnings(&self, user_id: &str) -> StoreResult<u64> {
        on_pool!(self, |pool, d| {
            sqlx::query(d.q("DELETE FROM api_user_warnings WHERE user_id = ?"))
                .bind(user_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(map_err)
    }

    async fn active_ban(&self, user_id: &str, now: DateTime<Utc>) -> StoreResult<Option<Ban>> {
        let row = on_pool!(self, |pool, d| {
            sqlx::query_as::<_, BanRow>(d.q(concat!(
                "SELECT ",
                ban_columns!("b2"),
                " FROM api_user_bans b2 WHERE b2.user_id = ? AND ",
                active_ban_condition!("b2"),
                " ORDER BY b2.created_at DESC, b2.id DESC LIMIT 1"
            )))
            .bind(user_id)
            .bind(naive(now))
            .fetch_optional(pool)
            .await
        })
        .map_err(map_err)?;
        Ok(row.map(Ban::from))
    }

    async fn ban_user(&self, ban: &Ban, now: DateTime<Utc>) -> StoreResult<BanOutcome> {
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            // Lock the user row so two concurrent bans of one user serialize.
            let user: Option<String> = sqlx::query_scalar(d.q_owned(format!(
                "SELECT id FROM api_users WHERE id = ?{}",
                d.for_update()
            )))
            .bind(&ban.user_id)
            .fetch_optional(&mut *tx)
            .await?;
            if user.is_none() {
                tx.rollback().await?;
                return Ok(BanOutcome::UserNotFound);
            }
            let existing: Option<String> = sqlx::query_scalar(d.q(concat!(
                "SELECT b2.id FROM api_user_bans b2 WHERE b2.user_id = ? AND ",
                active_ban_condition!("b2")
            )))
            .bind(&ban.user_id)
            .bind(naive(now))
            .fetch_optional(&mut *tx)
            .await?;
            if existing.is_some() {
                tx.rollback().await?;
                return Ok(BanOutcome::AlreadyBanned);
            }
            sqlx::query(d.q_owned(format!(
                "INSERT INTO api_user_bans (id, user_id, moderator_id, reason, created_at, {}, revoked_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                d.until()
            )))
            .bind(&ban.id)
            .bind(&ban.user_id)
            .bind(ban.moderator_id.as_deref())
            .bind(&ban.reason)
            .bind(naive(ban.created_at))
            .bind(ban.until.map(naive))
            .bind(ban.revoked_at.map(naive))
            .execute(&mut *tx)
            .await?;
            let revoked_sessions =
                sqlx::query(d.q("DELETE FROM api_user_sessions WHERE user_id = ?"))
                    .bind(&ban.user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(BanOutcome::Banned { revoked_sessions })
        })
        .map_err(map_err)
    }

    async fn revoke_ban(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        let revoked = on_pool!(self, |pool, d| {
            sqlx::query(d.q(
                "UPDATE api_user_bans SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL \
                 AND (api_user_bans.until IS NULL OR api_user_bans.until > ?)",
            ))
            .bind(naive(now))
            .bind(user_id)
            .bind(naive(now))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        Ok((revoked > 0).then_some(now))
    }

    async fn purgeable_users(&self, banned_before: DateTime<Utc>) -> StoreResult<Vec<String>> {
        on_pool!(self, |pool, d| {
            sqlx::query_scalar::<_, String>(d.q("SELECT DISTINCT b.user_id FROM api_user_bans b \
                 WHERE b.revoked_at IS NULL AND b.until IS NULL AND b.created_at < ?"))
            .bind(naive(banned_before))
            .fetch_all(pool)
            .await
        })
        .map_err(map_err)
    }
}
