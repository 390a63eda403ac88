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

// The trait implementations, by area (after the macros above, which they use).
mod moderation;
mod overlays;
mod sessions;
mod settings;
mod spotify;
mod tokens;
mod two_factor;
mod users;

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
