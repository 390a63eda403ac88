//! The storage traits over sqlx, written once for SQLite, PostgreSQL and MariaDB/MySQL.
//!
//! Every query is written with `?` placeholders in SQL that all three dialects accept; the few
//! differences (placeholder style, case-insensitive comparisons, transaction start, row locks)
//! live in [`Dialect`]. The `on_pool!` macro runs one body against whichever concrete pool the
//! store holds, so each method exists once and sqlx still sees concrete types.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::AssertSqlSafe;

use super::circuit::Circuit;
use super::{
    BanOutcome, ListQuery, OneTimeTokenStore, Page, RoleChange, SessionStore, SettingsStore,
    SpotifyStore, Store, StoreError, StoreResult, TwoFactorStore, UserListQuery, UserStore,
};
use super::{ModerationStore, OverlayStore, PoolUsage};
use crate::model::{
    Ban, EmailRevert, EmailRevertOutcome, LoginChallenge, OneTimeToken, Overlay, OverlayPatch,
    OwnedOverlay, Role, Session, Settings, SettingsPatch, SpotifyAuthorization, SpotifyCredentials,
    SpotifyCredentialsPatch, Stats, TokenPurpose, TwoFactor, User, UserWithBan, Warning,
    WarningView, canonical_email,
};

/// A connection pool of one of the supported databases.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
}

/// What differs between the SQL dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

impl Dialect {
    /// The statement as this dialect wants it: PostgreSQL numbers its placeholders.
    fn q(self, sql: &'static str) -> AssertSqlSafe<Cow<'static, str>> {
        match self {
            Dialect::Postgres => AssertSqlSafe(Cow::Owned(number_placeholders(sql))),
            Dialect::Sqlite | Dialect::MySql => AssertSqlSafe(Cow::Borrowed(sql)),
        }
    }

    /// [`Dialect::q`] for statements assembled at run time (from fixed fragments only).
    fn q_owned(self, sql: String) -> AssertSqlSafe<Cow<'static, str>> {
        match self {
            Dialect::Postgres => AssertSqlSafe(Cow::Owned(number_placeholders(&sql))),
            Dialect::Sqlite | Dialect::MySql => AssertSqlSafe(Cow::Owned(sql)),
        }
    }

    /// Starts a write transaction. SQLite takes the write lock at once, so two read-then-write
    /// transactions queue instead of failing when the second one upgrades its lock.
    fn begin(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres | Dialect::MySql => "BEGIN",
        }
    }

    /// Row lock for read-then-write transactions (SQLite locks the whole database instead).
    fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::MySql => " FOR UPDATE",
        }
    }

    /// Case-insensitive `LIKE`.
    fn ilike(self) -> &'static str {
        match self {
            Dialect::Postgres => "ILIKE",
            // SQLite's LIKE ignores ASCII case; MySQL's follows the (case-insensitive) collation.
            Dialect::Sqlite | Dialect::MySql => "LIKE",
        }
    }

    /// `insert` (an `INSERT` statement) made to do nothing when a row with the same `key`
    /// exists. Unlike MySQL's `INSERT IGNORE`, other errors (a missing user) still fail.
    fn insert_if_absent(self, insert: &str, key: &str) -> String {
        match self {
            Dialect::Sqlite | Dialect::Postgres => {
                format!("{insert} ON CONFLICT ({key}) DO NOTHING")
            }
            Dialect::MySql => format!("{insert} ON DUPLICATE KEY UPDATE {key} = {key}"),
        }
    }

    /// The bans' `until` column, which MySQL reserves as a keyword.
    fn until(self) -> &'static str {
        match self {
            Dialect::MySql => "`until`",
            Dialect::Sqlite | Dialect::Postgres => "until",
        }
    }
}

/// Rewrites `?` placeholders as `$1, $2, ...`. Our statements never hold a `?` elsewhere.
fn number_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs `$body` (in an async block, so `?` and `return` stay inside it) with `$pool` bound to
/// the store's concrete pool and `$d` to its [`Dialect`]. A body the database chose as the
/// victim of a deadlock was rolled back whole, so it runs again (a few times at most). While
/// the database is known to be down (the store's [`Circuit`] is open) nothing runs and the call
/// fails at once; a failure that says it is down opens the circuit.
macro_rules! on_pool {
    ($store:expr, |$pool:ident, $d:ident| $body:expr) => {{
        let store = &$store;
        if store.circuit.is_open() {
            Err(Circuit::open_error())
        } else {
            let result = match &store.pool {
                Pool::Sqlite($pool) => {
                    let $d = Dialect::Sqlite;
                    retrying!(async { $body })
                }
                Pool::Postgres($pool) => {
                    let $d = Dialect::Postgres;
                    retrying!(async { $body })
                }
                Pool::MySql($pool) => {
                    let $d = Dialect::MySql;
                    retrying!(async { $body })
                }
            };
            if let Err(err) = &result {
                store.circuit.observe(&store.pool, err);
            }
            result
        }
    }};
}

/// Awaits `$attempt` (an expression making a fresh future each time) again while it fails by
/// deadlock, up to [`DEADLOCK_ATTEMPTS`] times.
macro_rules! retrying {
    ($attempt:expr) => {{
        let mut attempts = 1;
        loop {
            match $attempt.await {
                Err(err) if attempts < DEADLOCK_ATTEMPTS && is_deadlock(&err) => attempts += 1,
                result => break result,
            }
        }
    }};
}

/// How often a statement or transaction runs before a deadlock is reported as an error.
const DEADLOCK_ATTEMPTS: u32 = 4;

/// Whether the database rolled back the transaction to break a deadlock (or a serialization
/// conflict): nothing of it remains, so running it again is safe.
fn is_deadlock(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("40001" | "40P01")),
        _ => false,
    }
}

/// The storage traits over a sqlx pool of SQLite, PostgreSQL or MariaDB/MySQL.
///
/// Open one with [`crate::store::sqlite::open`] (or the other backends' `open`), which also
/// runs the dialect's migrations.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pub(crate) pool: Pool,
    circuit: Arc<Circuit>,
}

impl SqlStore {
    pub(crate) fn new(pool: Pool) -> Self {
        SqlStore {
            pool,
            circuit: Arc::default(),
        }
    }

    /// Closes every connection; later calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
            Pool::MySql(pool) => pool.close().await,
        }
    }

    /// Connections open now and how many of them are idle (for metrics).
    pub fn pool_usage(&self) -> (u32, usize) {
        match &self.pool {
            Pool::Sqlite(pool) => (pool.size(), pool.num_idle()),
            Pool::Postgres(pool) => (pool.size(), pool.num_idle()),
            Pool::MySql(pool) => (pool.size(), pool.num_idle()),
        }
    }
}

impl Pool {
    /// `SELECT 1` on a connection of the pool, past the circuit (for its probe).
    pub(crate) async fn ping(&self) -> Result<(), sqlx::Error> {
        let ping = "SELECT 1";
        match self {
            Pool::Sqlite(pool) => sqlx::query(ping).execute(pool).await.map(drop),
            Pool::Postgres(pool) => sqlx::query(ping).execute(pool).await.map(drop),
            Pool::MySql(pool) => sqlx::query(ping).execute(pool).await.map(drop),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Pool::Sqlite(pool) => pool.is_closed(),
            Pool::Postgres(pool) => pool.is_closed(),
            Pool::MySql(pool) => pool.is_closed(),
        }
    }

    /// Whether the pool holds as many connections as it may open.
    fn is_full(&self) -> bool {
        fn full<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> bool {
            pool.size() >= pool.options().get_max_connections()
        }
        match self {
            Pool::Sqlite(pool) => full(pool),
            Pool::Postgres(pool) => full(pool),
            Pool::MySql(pool) => full(pool),
        }
    }
}

/// Whether `err` says the database is down, not merely busy or refusing a statement: what
/// opens the [`Circuit`]. A pool timeout means "down" only when the pool was not full, i.e. it
/// could not open a connection (sqlx retries a refused connection until the timeout).
pub(crate) fn is_outage(pool: &Pool, err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut => !pool.is_full(),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => server_is_going_away(db.code().as_deref()),
        _ => false,
    }
}

/// Maps sqlx errors to meanings: unique violations, unreachable database, anything else.
fn map_err(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            // PostgreSQL names the constraint, MySQL the index and SQLite the column.
            let what = if db.constraint() == Some(EMAIL_INDEX)
                || db.message().contains(EMAIL_INDEX)
                || db.message().contains("api_users.email_canonical")
            {
                "email"
            } else {
                "id"
            };
            StoreError::AlreadyExists(what)
        }
        sqlx::Error::Database(db) if server_is_going_away(db.code().as_deref()) => {
            StoreError::Unavailable(Box::new(sqlx::Error::Database(db)))
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(err)),
        other => StoreError::Backend(Box::new(other)),
    }
}

/// The unique index of canonical e-mails, under this name in every dialect.
const EMAIL_INDEX: &str = "ix_api_users_email_canonical";

/// Whether a database error code says the server is shutting down, starting or unreachable,
/// rather than that the statement is wrong.
fn server_is_going_away(code: Option<&str>) -> bool {
    match code {
        // PostgreSQL: connection exceptions (class 08), admin/crash shutdown, cannot connect now.
        Some(code) if code.starts_with("08") => true,
        Some("57P01" | "57P02" | "57P03") => true,
        // MySQL/MariaDB: server shutdown in progress, too many connections, gone away, lost.
        Some("1053" | "1040" | "2006" | "2013") => true,
        _ => false,
    }
}

fn naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn limit_offset(query: &ListQuery) -> (i64, i64) {
    (
        i64::from(query.page_size),
        i64::try_from(query.offset()).unwrap_or(i64::MAX),
    )
}

macro_rules! user_columns {
    () => {
        "u.id, u.username, u.email, u.password_hash, u.role, u.created_at, u.updated_at, u.last_login_at"
    };
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    username: String,
    email: String,
    password_hash: String,
    role: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    last_login_at: Option<NaiveDateTime>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        let role = row.role.parse().unwrap_or_else(|_| {
            // A role this version does not know gets the least power, not an error.
            tracing::warn!(user_id = %row.id, role = %row.role, "unknown role in database, treating as user");
            Role::User
        });
        User {
            id: row.id,
            username: row.username,
            email: row.email,
            password_hash: row.password_hash,
            role,
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
            last_login_at: row.last_login_at.map(utc),
        }
    }
}

#[derive(sqlx::FromRow)]
struct UserBanRow {
    #[sqlx(flatten)]
    user: UserRow,
    ban_id: Option<String>,
    ban_moderator_id: Option<String>,
    ban_reason: Option<String>,
    ban_created_at: Option<NaiveDateTime>,
    ban_until: Option<NaiveDateTime>,
}

impl From<UserBanRow> for UserWithBan {
    fn from(row: UserBanRow) -> Self {
        let active_ban = match (row.ban_id, row.ban_created_at) {
            (Some(id), Some(created_at)) => Some(Ban {
                id,
                user_id: row.user.id.clone(),
                moderator_id: row.ban_moderator_id,
                reason: row.ban_reason.unwrap_or_default(),
                created_at: utc(created_at),
                until: row.ban_until.map(utc),
                revoked_at: None,
            }),
            _ => None,
        };
        UserWithBan {
            user: row.user.into(),
            active_ban,
        }
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    user_id: String,
    token_hash: String,
    family_id: String,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    rotated_at: Option<NaiveDateTime>,
}

impl From<SessionRow> for Session {
    fn from(row: SessionRow) -> Self {
        Session {
            id: row.id,
            user_id: row.user_id,
            token_hash: row.token_hash,
            family_id: row.family_id,
            created_at: utc(row.created_at),
            expires_at: utc(row.expires_at),
            rotated_at: row.rotated_at.map(utc),
        }
    }
}

#[derive(sqlx::FromRow)]
struct SettingsRow {
    theme: String,
    layout: String,
    default_overlay_color: String,
    avatar_mode: String,
    avatar_color: String,
}

impl From<SettingsRow> for Settings {
    fn from(row: SettingsRow) -> Self {
        Settings {
            theme: row.theme,
            layout: row.layout,
            default_overlay_color: row.default_overlay_color,
            avatar_mode: row.avatar_mode,
            avatar_color: row.avatar_color,
        }
    }
}

#[derive(sqlx::FromRow)]
struct OverlayRow {
    id: String,
    owner_id: String,
    name: String,
    template: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl From<OverlayRow> for Overlay {
    fn from(row: OverlayRow) -> Self {
        Overlay {
            id: row.id,
            owner_id: row.owner_id,
            name: row.name,
            template: row.template,
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        }
    }
}

#[derive(sqlx::FromRow)]
struct OwnedOverlayRow {
    #[sqlx(flatten)]
    overlay: OverlayRow,
    owner_username: String,
}

#[derive(sqlx::FromRow)]
struct TwoFactorRow {
    user_id: String,
    secret: Option<String>,
    enabled_at: NaiveDateTime,
    verified_at: Option<NaiveDateTime>,
    last_used_step: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ChallengeRow {
    id: String,
    user_id: String,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
    failed_attempts: i32,
}

impl From<ChallengeRow> for LoginChallenge {
    fn from(row: ChallengeRow) -> Self {
        LoginChallenge {
            id: row.id,
            user_id: row.user_id,
            created_at: utc(row.created_at),
            expires_at: utc(row.expires_at),
            used_at: row.used_at.map(utc),
            attempts: u32::try_from(row.failed_attempts).unwrap_or(0),
        }
    }
}

#[derive(sqlx::FromRow)]
struct WarningRow {
    id: String,
    user_id: String,
    moderator_id: Option<String>,
    reason: String,
    created_at: NaiveDateTime,
    user_username: Option<String>,
    user_email: Option<String>,
    moderator_username: Option<String>,
    moderator_email: Option<String>,
}

impl From<WarningRow> for WarningView {
    fn from(row: WarningRow) -> Self {
        WarningView {
            warning: Warning {
                id: row.id,
                user_id: row.user_id,
                moderator_id: row.moderator_id,
                reason: row.reason,
                created_at: utc(row.created_at),
            },
            user_username: row.user_username,
            user_email: row.user_email,
            moderator_username: row.moderator_username,
            moderator_email: row.moderator_email,
        }
    }
}

#[derive(sqlx::FromRow)]
struct BanRow {
    id: String,
    user_id: String,
    moderator_id: Option<String>,
    reason: String,
    created_at: NaiveDateTime,
    until: Option<NaiveDateTime>,
    revoked_at: Option<NaiveDateTime>,
}

impl From<BanRow> for Ban {
    fn from(row: BanRow) -> Self {
        Ban {
            id: row.id,
            user_id: row.user_id,
            moderator_id: row.moderator_id,
            reason: row.reason,
            created_at: utc(row.created_at),
            until: row.until.map(utc),
            revoked_at: row.revoked_at.map(utc),
        }
    }
}

#[derive(sqlx::FromRow)]
struct StatsRow {
    users_count: i64,
    overlays_count: i64,
    moderators_count: i64,
    admins_count: i64,
    active_2fa_count: i64,
    last_user_registered_at: Option<NaiveDateTime>,
}

#[derive(sqlx::FromRow)]
struct SpotifyRow {
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

#[derive(sqlx::FromRow)]
struct SpotifyAuthorizationRow {
    state_hash: String,
    user_id: String,
    redirect_uri: String,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
}

impl From<SpotifyAuthorizationRow> for SpotifyAuthorization {
    fn from(row: SpotifyAuthorizationRow) -> Self {
        SpotifyAuthorization {
            state_hash: row.state_hash,
            user_id: row.user_id,
            redirect_uri: row.redirect_uri,
            created_at: utc(row.created_at),
            expires_at: utc(row.expires_at),
        }
    }
}

/// Marks every outstanding password-reset and 2FA-disable token of a user used, inside a
/// transaction: after one of them is used or the password changes, the others must not work.
macro_rules! invalidate_mailed_tokens {
    ($d:expr, $conn:expr, $user_id:expr, $now:expr) => {{
        for table in ["api_password_resets", "api_twofa_disable"] {
            sqlx::query($d.q_owned(format!(
                "UPDATE {table} SET used_at = ? WHERE user_id = ? AND used_at IS NULL"
            )))
            .bind(naive($now))
            .bind($user_id)
            .execute(&mut *$conn)
            .await?;
        }
    }};
}

/// Rows of a user, in the order a transaction must delete them before the user row.
/// Warnings and bans the user issued as a moderator are kept, without a moderator.
const USER_DELETION: &[&str] = &[
    "DELETE FROM api_user_sessions WHERE user_id = ?",
    "DELETE FROM api_overlays WHERE owner_id = ?",
    "DELETE FROM api_twofa WHERE user_id = ?",
    "DELETE FROM api_spotify_secrets WHERE user_id = ?",
    "DELETE FROM api_spotify_tokens WHERE user_id = ?",
    "DELETE FROM api_spotify_authorizations WHERE user_id = ?",
    "DELETE FROM api_password_resets WHERE user_id = ?",
    "DELETE FROM api_twofa_disable WHERE user_id = ?",
    "DELETE FROM api_email_reverts WHERE user_id = ?",
    "DELETE FROM api_user_settings WHERE user_id = ?",
    "DELETE FROM api_login_challenges WHERE user_id = ?",
    "DELETE FROM api_user_warnings WHERE user_id = ?",
    "DELETE FROM api_user_bans WHERE user_id = ?",
    "UPDATE api_user_warnings SET moderator_id = NULL WHERE moderator_id = ?",
    "UPDATE api_user_bans SET moderator_id = NULL WHERE moderator_id = ?",
];

/// Active-ban condition on `b2` at the bound time.
macro_rules! active_ban_condition {
    ($alias:literal) => {
        concat!(
            $alias,
            ".revoked_at IS NULL AND (",
            $alias,
            ".until IS NULL OR ",
            $alias,
            ".until > ?)"
        )
    };
}

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

#[async_trait]
impl SettingsStore for SqlStore {
    async fn settings(&self, user_id: &str) -> StoreResult<Option<Settings>> {
        let row = on_pool!(self, |pool, d| {
            sqlx::query_as::<_, SettingsRow>(d.q(
                "SELECT theme, layout, default_overlay_color, avatar_mode, avatar_color \
                 FROM api_user_settings WHERE user_id = ?",
            ))
            .bind(user_id)
            .fetch_optional(pool)
            .await
        })
        .map_err(map_err)?;
        Ok(row.map(Settings::from))
    }

    async fn update_settings(&self, user_id: &str, patch: &SettingsPatch) -> StoreResult<Settings> {
        on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            // The row exists before it is read, so two first patches lock the same row instead
            // of both inserting it.
            sqlx::query(d.q_owned(d.insert_if_absent(
                "INSERT INTO api_user_settings (user_id) VALUES (?)",
                "user_id",
            )))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            let current = sqlx::query_as::<_, SettingsRow>(d.q_owned(format!(
                "SELECT theme, layout, default_overlay_color, avatar_mode, avatar_color \
                 FROM api_user_settings WHERE user_id = ?{}",
                d.for_update()
            )))
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
            let next = patch.apply_to(current.into());
            sqlx::query(d.q(
                "UPDATE api_user_settings SET theme = ?, layout = ?, default_overlay_color = ?, \
                 avatar_mode = ?, avatar_color = ? WHERE user_id = ?",
            ))
            .bind(&next.theme)
            .bind(&next.layout)
            .bind(&next.default_overlay_color)
            .bind(&next.avatar_mode)
            .bind(&next.avatar_color)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(next)
        })
        .map_err(map_err)
    }

    async fn fallback_color(&self, user_id: &str) -> StoreResult<Option<String>> {
        let row: Option<(Option<String>,)> = on_pool!(self, |pool, d| {
            sqlx::query_as(d.q("SELECT s.default_overlay_color FROM api_users u \
                 LEFT JOIN api_user_settings s ON s.user_id = u.id WHERE u.id = ?"))
            .bind(user_id)
            .fetch_optional(pool)
            .await
        })
        .map_err(map_err)?;
        Ok(row.map(|(color,)| color.unwrap_or_else(|| Settings::default().default_overlay_color)))
    }
}

macro_rules! overlay_columns {
    () => {
        "o.id, o.owner_id, o.name, o.template, o.created_at, o.updated_at"
    };
}

#[async_trait]
impl OverlayStore for SqlStore {
    async fn insert_overlay(&self, overlay: &Overlay) -> StoreResult<()> {
        on_pool!(self, |pool, d| {
            sqlx::query(d.q(
                "INSERT INTO api_overlays (id, owner_id, name, color_hex, template, style, created_at, updated_at) \
                 VALUES (?, ?, ?, '#25d865', ?, 'light', ?, ?)",
            ))
            .bind(&overlay.id)
            .bind(&overlay.owner_id)
            .bind(&overlay.name)
            .bind(&overlay.template)
            .bind(naive(overlay.created_at))
            .bind(naive(overlay.updated_at))
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(map_err)
    }

    async fn overlay_by_id(&self, id: &str) -> StoreResult<Option<Overlay>> {
        let row = on_pool!(self, |pool, d| {
            sqlx::query_as::<_, OverlayRow>(d.q(concat!(
                "SELECT ",
                overlay_columns!(),
                " FROM api_overlays o WHERE o.id = ?"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await
        })
        .map_err(map_err)?;
        Ok(row.map(Overlay::from))
    }

    async fn overlays_of(&self, owner_id: &str) -> StoreResult<Vec<Overlay>> {
        let rows = on_pool!(self, |pool, d| {
            sqlx::query_as::<_, OverlayRow>(d.q(concat!(
                "SELECT ",
                overlay_columns!(),
                " FROM api_overlays o WHERE o.owner_id = ? ORDER BY o.created_at, o.id"
            )))
            .bind(owner_id)
            .fetch_all(pool)
            .await
        })
        .map_err(map_err)?;
        Ok(rows.into_iter().map(Overlay::from).collect())
    }

    async fn update_overlay(
        &self,
        id: &str,
        patch: &OverlayPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Overlay>> {
        let row = on_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin()).await?;
            let updated = sqlx::query(d.q(
                "UPDATE api_overlays SET name = COALESCE(?, name), template = COALESCE(?, template), \
                 updated_at = ? WHERE id = ?",
            ))
            .bind(patch.name.as_deref())
            .bind(patch.template.as_deref())
            .bind(naive(now))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let row = if updated == 0 {
                None
            } else {
                sqlx::query_as::<_, OverlayRow>(d.q(concat!(
                    "SELECT ",
                    overlay_columns!(),
                    " FROM api_overlays o WHERE o.id = ?"
                )))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
            };
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        })
        .map_err(map_err)?;
        Ok(row.map(Overlay::from))
    }

    async fn delete_overlay(&self, id: &str) -> StoreResult<bool> {
        on_pool!(self, |pool, d| {
            sqlx::query(d.q("DELETE FROM api_overlays WHERE id = ?"))
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected() > 0)
        })
        .map_err(map_err)
    }

    async fn list_overlays(&self, query: &ListQuery) -> StoreResult<Page<OwnedOverlay>> {
        let pattern = query.like_pattern();
        let (limit, offset) = limit_offset(query);
        let (rows, total) = on_pool!(self, |pool, d| {
            let mut from =
                String::from(" FROM api_overlays o JOIN api_users u ON u.id = o.owner_id");
            if pattern.is_some() {
                let like = d.ilike();
                from.push_str(&format!(
                    " WHERE (o.name {like} ? ESCAPE '!' OR o.template {like} ? ESCAPE '!' \
                     OR o.id {like} ? ESCAPE '!' OR o.owner_id {like} ? ESCAPE '!' \
                     OR u.username {like} ? ESCAPE '!')"
                ));
            }
            let select = format!(
                concat!(
                    "SELECT ",
                    overlay_columns!(),
                    ", u.username AS owner_username{} ORDER BY o.created_at DESC, o.id DESC LIMIT ? OFFSET ?"
                ),
                from
            );
            let mut rows = sqlx::query_as::<_, OwnedOverlayRow>(d.q_owned(select));
            let mut total = sqlx::query_scalar::<_, i64>(d.q_owned(format!("SELECT COUNT(*){from}")));
            if let Some(pattern) = &pattern {
                for _ in 0..5 {
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
            items: rows
                .into_iter()
                .map(|row| OwnedOverlay {
                    overlay: row.overlay.into(),
                    owner_username: row.owner_username,
                })
                .collect(),
            total: count(total),
        })
    }
}

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

#[async_trait]
impl SpotifyStore for SqlStore {
    async fn spotify_credentials(&self, user_id: &str) -> StoreResult<SpotifyCredentials> {
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
        Ok(row
            .map(|row| SpotifyCredentials {
                client_id: row.client_id,
                client_secret_encrypted: row.client_secret,
                refresh_token_encrypted: row.refresh_token,
            })
            .unwrap_or_default())
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

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, |pool, d| {
            sqlx::query(d.q("SELECT 1")).execute(pool).await.map(drop)
        })
        .map_err(map_err)
    }

    fn pool_usage(&self) -> Option<PoolUsage> {
        fn usage<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> PoolUsage {
            PoolUsage {
                open: pool.size(),
                idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                max: pool.options().get_max_connections(),
            }
        }
        Some(match &self.pool {
            Pool::Sqlite(pool) => usage(pool),
            Pool::Postgres(pool) => usage(pool),
            Pool::MySql(pool) => usage(pool),
        })
    }
}

/// How long a request waits for a free connection before the database counts as unavailable.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_if_absent_in_every_dialect() {
        let insert = "INSERT INTO t (k) VALUES (?)";
        assert_eq!(
            Dialect::Postgres.insert_if_absent(insert, "k"),
            "INSERT INTO t (k) VALUES (?) ON CONFLICT (k) DO NOTHING"
        );
        assert_eq!(
            Dialect::MySql.insert_if_absent(insert, "k"),
            "INSERT INTO t (k) VALUES (?) ON DUPLICATE KEY UPDATE k = k"
        );
    }

    #[test]
    fn shutdown_codes_mean_unavailable() {
        for code in ["57P01", "08006", "1053", "2013"] {
            assert!(server_is_going_away(Some(code)), "{code}");
        }
        for code in ["23505", "42601", "1062"] {
            assert!(!server_is_going_away(Some(code)), "{code}");
        }
        assert!(!server_is_going_away(None));
    }

    #[test]
    fn postgres_placeholders_are_numbered() {
        assert_eq!(
            number_placeholders("SELECT a FROM t WHERE b = ? AND c > ?"),
            "SELECT a FROM t WHERE b = $1 AND c > $2"
        );
    }
}
