//! The accounts: [`UserStore`], and the backfill of canonical e-mails.

use super::*;

#[async_trait]
impl UserStore for SqlStore {
    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        on_pool!(self, |pool, d| {
            sqlx::query(d.q(
                "INSERT INTO api_users (id, username, email, email_canonical, password_hash, role, created_at, updated_at, last_login_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ))
            .bind(&user.id)
            .bind(&user.username)
            .bind(&user.email)
            .bind(canonical_email(&user.email))
            .bind(&user.password_hash)
            .bind(user.role.as_str())
            .bind(naive(user.created_at))
            .bind(naive(user.updated_at))
            .bind(user.last_login_at.map(naive))
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(map_err)
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        let row = on_pool!(self, |pool, d| {
            sqlx::query_as::<_, UserRow>(d.q(concat!(
                "SELECT ",
                user_columns!(),
                " FROM api_users u WHERE u.id = ?"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await
        })
        .map_err(map_err)?;
        Ok(row.map(User::from))
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let canonical = canonical_email(email);
        let row = on_pool!(self, |pool, d| {
            sqlx::query_as::<_, UserRow>(d.q(concat!(
                "SELECT ",
                user_columns!(),
                " FROM api_users u WHERE u.email_canonical = ?"
            )))
            .bind(&canonical)
            .fetch_optional(pool)
            .await
        })
        .map_err(map_err)?;
        Ok(row.map(User::from))
    }

    async fn users_by_username(&self, username: &str) -> StoreResult<Vec<User>> {
        let rows = on_pool!(self, |pool, d| {
            sqlx::query_as::<_, UserRow>(d.q(concat!(
                "SELECT ",
                user_columns!(),
                " FROM api_users u WHERE u.username = ? ORDER BY u.created_at, u.id"
            )))
            .bind(username)
            .fetch_all(pool)
            .await
        })
        .map_err(map_err)?;
        // MySQL's collation ignores case; the match must be exact in every backend.
        Ok(rows
            .into_iter()
            .filter(|row| row.username == username)
            .map(User::from)
            .collect())
    }

    async fn update_profile(
        &self,
        id: &str,
        username: Option<&str>,
        email: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let canonical = email.map(canonical_email);
        let result = on_pool!(self, |pool, d| {
            sqlx::query(d.q(
                "UPDATE api_users SET username = COALESCE(?, username), email = COALESCE(?, email), \
                 email_canonical = COALESCE(?, email_canonical), updated_at = ? WHERE id = ?",
            ))
            .bind(username)
            .bind(email)
            .bind(canonical.as_deref())
            .bind(naive(now))
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(map_err)?;
        Ok(result > 0)
    }

    async fn change_email(
        &self,
        revert: &EmailRevert,
        username: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let canonical = canonical_email(&revert.new_email);
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            let changed = sqlx::query(d.q(
                "UPDATE api_users SET username = COALESCE(?, username), email = ?, email_canonical = ?, \
                 updated_at = ? WHERE id = ?",
            ))
            .bind(username)
            .bind(&revert.new_email)
            .bind(&canonical)
            .bind(naive(now))
            .bind(&revert.user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(d.q(
                "INSERT INTO api_email_reverts (token, user_id, old_email, new_email, created_at, expires_at, used_at) \
                 VALUES (?, ?, ?, ?, ?, ?, NULL)",
            ))
            .bind(&revert.token_hash)
            .bind(&revert.user_id)
            .bind(&revert.old_email)
            .bind(&revert.new_email)
            .bind(naive(revert.created_at))
            .bind(naive(revert.expires_at))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(true)
        })
        .map_err(map_err)
    }

    async fn update_password(
        &self,
        id: &str,
        password_hash: &str,
        keep_family: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            sqlx::query(d.q("UPDATE api_users SET password_hash = ?, updated_at = ? WHERE id = ?"))
                .bind(password_hash)
                .bind(naive(now))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let revoked = match keep_family {
                Some(family) => sqlx::query(d.q(
                    "DELETE FROM api_user_sessions WHERE user_id = ? AND (family_id IS NULL OR family_id <> ?)",
                ))
                .bind(id)
                .bind(family)
                .execute(&mut *tx)
                .await?,
                None => sqlx::query(d.q("DELETE FROM api_user_sessions WHERE user_id = ?"))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?,
            }
            .rows_affected();
            invalidate_mailed_tokens!(d, &mut *tx, id, now);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(revoked)
        })
        .map_err(map_err)
    }

    async fn replace_password_hash(
        &self,
        id: &str,
        expected: &str,
        password_hash: &str,
    ) -> StoreResult<bool> {
        on_pool!(self, |pool, d| {
            sqlx::query(
                d.q("UPDATE api_users SET password_hash = ? WHERE id = ? AND password_hash = ?"),
            )
            .bind(password_hash)
            .bind(id)
            .bind(expected)
            .execute(pool)
            .await
            .map(|r| r.rows_affected() > 0)
        })
        .map_err(map_err)
    }

    async fn record_login(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        on_pool!(self, |pool, d| {
            sqlx::query(d.q("UPDATE api_users SET last_login_at = ? WHERE id = ?"))
                .bind(naive(now))
                .bind(id)
                .execute(pool)
                .await
                .map(drop)
        })
        .map_err(map_err)
    }

    async fn set_role(&self, id: &str, role: Role, now: DateTime<Utc>) -> StoreResult<RoleChange> {
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            // Lock every admin row first, so two admins demoting each other cannot both pass.
            let admins: Vec<String> = sqlx::query_scalar(d.q_owned(format!(
                "SELECT id FROM api_users WHERE role = 'admin'{}",
                d.for_update()
            )))
            .fetch_all(&mut *tx)
            .await?;
            let current: Option<String> =
                sqlx::query_scalar(d.q("SELECT role FROM api_users WHERE id = ?"))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let outcome = match current {
                None => RoleChange::UserNotFound,
                Some(current)
                    if current == Role::Admin.as_str()
                        && role != Role::Admin
                        && admins.len() <= 1 =>
                {
                    RoleChange::LastAdmin
                }
                Some(_) => {
                    sqlx::query(d.q("UPDATE api_users SET role = ?, updated_at = ? WHERE id = ?"))
                        .bind(role.as_str())
                        .bind(naive(now))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    RoleChange::Changed
                }
            };
            tx.commit().await?;
            Ok::<_, sqlx::Error>(outcome)
        })
        .map_err(map_err)
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            for statement in USER_DELETION {
                sqlx::query(d.q(statement))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            let deleted = sqlx::query(d.q("DELETE FROM api_users WHERE id = ?"))
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(deleted > 0)
        })
        .map_err(map_err)
    }

    async fn list_users(
        &self,
        query: &UserListQuery,
        now: DateTime<Utc>,
    ) -> StoreResult<Page<UserWithBan>> {
        let pattern = query.list.like_pattern();
        let email_pattern = query.list.email_like_pattern();
        let (limit, offset) = limit_offset(&query.list);
        let (rows, total) = on_pool!(self, |pool, d| {
            let mut from = String::from(concat!(
                " FROM api_users u LEFT JOIN api_user_bans b ON b.id = (",
                "SELECT b2.id FROM api_user_bans b2 WHERE b2.user_id = u.id AND ",
                active_ban_condition!("b2"),
                " ORDER BY b2.created_at DESC, b2.id DESC LIMIT 1) WHERE 1 = 1"
            ));
            if pattern.is_some() {
                let like = d.ilike();
                from.push_str(&format!(
                    " AND (u.username {like} ? ESCAPE '!' OR u.email_canonical LIKE ? ESCAPE '!')"
                ));
            }
            match query.banned {
                Some(true) => from.push_str(" AND b.id IS NOT NULL"),
                Some(false) => from.push_str(" AND b.id IS NULL"),
                None => {}
            }
            let select = format!(
                concat!(
                    "SELECT ",
                    user_columns!(),
                    ", b.id AS ban_id, b.moderator_id AS ban_moderator_id, b.reason AS ban_reason, ",
                    "b.created_at AS ban_created_at, b.until AS ban_until{} ",
                    "ORDER BY u.created_at DESC, u.id DESC LIMIT ? OFFSET ?"
                ),
                from
            );
            let mut rows = sqlx::query_as::<_, UserBanRow>(d.q_owned(select)).bind(naive(now));
            let mut total = sqlx::query_scalar::<_, i64>(d.q_owned(format!("SELECT COUNT(*){from}")))
                .bind(naive(now));
            if let (Some(pattern), Some(email_pattern)) = (&pattern, &email_pattern) {
                rows = rows.bind(pattern.clone()).bind(email_pattern.clone());
                total = total.bind(pattern.clone()).bind(email_pattern.clone());
            }
            let rows = rows.bind(limit).bind(offset).fetch_all(pool).await?;
            let total = total.fetch_one(pool).await?;
            Ok::<_, sqlx::Error>((rows, total))
        })
        .map_err(map_err)?;
        Ok(Page {
            items: rows.into_iter().map(UserWithBan::from).collect(),
            total: count(total),
        })
    }

    async fn stats(&self) -> StoreResult<Stats> {
        let row = on_pool!(self, |pool, d| {
            sqlx::query_as::<_, StatsRow>(d.q(
                "SELECT \
                 (SELECT COUNT(*) FROM api_users) AS users_count, \
                 (SELECT COUNT(*) FROM api_overlays) AS overlays_count, \
                 (SELECT COUNT(*) FROM api_users WHERE role = 'moderator') AS moderators_count, \
                 (SELECT COUNT(*) FROM api_users WHERE role = 'admin') AS admins_count, \
                 (SELECT COUNT(*) FROM api_twofa WHERE verified_at IS NOT NULL) AS active_2fa_count, \
                 (SELECT MAX(created_at) FROM api_users) AS last_user_registered_at",
            ))
            .fetch_one(pool)
            .await
        })
        .map_err(map_err)?;
        Ok(Stats {
            users_count: count(row.users_count),
            overlays_count: count(row.overlays_count),
            moderators_count: count(row.moderators_count),
            admins_count: count(row.admins_count),
            active_2fa_count: count(row.active_2fa_count),
            last_user_registered_at: row.last_user_registered_at.map(utc),
        })
    }
}

/// What [`SqlStore::fill_canonical_emails`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CanonicalBackfill {
    /// Accounts whose canonical address was filled in.
    pub filled: u64,
    /// Accounts left without one: an older account holds the same canonical address.
    pub collisions: u64,
}

impl SqlStore {
    /// Fills `email_canonical` of every account that lacks it (rows older than migration 0005,
    /// such as an adopted database of the earlier service), oldest account first. An account
    /// whose canonical address an older account already holds keeps NULL: it can no longer be
    /// found by e-mail (login by username still works, and a new address can be set); each is
    /// logged with both ids. Runs after the migrations, at every start; cheap when nothing is
    /// missing.
    pub(crate) async fn fill_canonical_emails(&self) -> StoreResult<CanonicalBackfill> {
        let missing: Vec<(String, String)> = on_pool!(self, |pool, d| {
            sqlx::query_as(d.q(
                "SELECT id, email FROM api_users WHERE email_canonical IS NULL ORDER BY created_at, id",
            ))
            .fetch_all(pool)
            .await
        })
        .map_err(map_err)?;
        let mut report = CanonicalBackfill::default();
        for (id, email) in missing {
            let canonical = canonical_email(&email);
            let filled = on_pool!(self, |pool, d| {
                sqlx::query(d.q(
                    "UPDATE api_users SET email_canonical = ? WHERE id = ? AND email_canonical IS NULL",
                ))
                .bind(&canonical)
                .bind(&id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })
            .map_err(map_err);
            match filled {
                Ok(_) => report.filled += 1,
                Err(StoreError::AlreadyExists("email")) => {
                    report.collisions += 1;
                    let holder = self.user_by_email(&email).await?.map(|u| u.id);
                    tracing::warn!(
                        user_id = %id,
                        holder_id = ?holder,
                        "e-mail address collides with an older account's under the canonical \
                         form; this account can no longer be found by e-mail"
                    );
                }
                Err(err) => return Err(err),
            }
        }
        Ok(report)
    }
}
