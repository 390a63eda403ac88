//! Storage: the traits every backend implements, and the sqlx backends.
//!
//! The traits speak in domain types ([`crate::model`]) and a backend-neutral [`StoreError`].
//! Each method that changes several rows does so atomically (one transaction in the SQL
//! backends), so a failure never leaves half a change behind.
//!
//! To write your own backend, implement every trait below for one type, plus [`Store::ping`].
//! Check it with the conformance kit (`melodyhue_testkit::conformance`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::{
    Ban, EmailRevert, EmailRevertOutcome, LoginChallenge, OneTimeToken, Overlay, OverlayPatch,
    OwnedOverlay, Role, Session, Settings, SettingsPatch, SpotifyAuthorization, SpotifyCredentials,
    SpotifyCredentialsPatch, Stats, TokenPurpose, TwoFactor, User, UserWithBan, Warning,
    WarningView,
};

mod circuit;
pub mod mysql;
pub mod postgres;
mod sql;
pub mod sqlite;

pub use circuit::CircuitOpen;
pub use sql::SqlStore;

/// Opens the database named by `url` with the matching backend, running its migrations:
/// `sqlite:...`, `postgres://...` (or `postgresql://`), `mysql://...` (or `mariadb://`).
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(sqlite::open(url).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(postgres::open(url).await?));
    }
    if let Some(rest) = url.strip_prefix("mariadb://") {
        return Ok(Arc::new(mysql::open(&format!("mysql://{rest}")).await?));
    }
    if url.starts_with("mysql://") {
        return Ok(Arc::new(mysql::open(url).await?));
    }
    Err(StoreError::Backend(
        format!(
            "unsupported database URL scheme in {:?}",
            url.split(':').next().unwrap_or("")
        )
        .into(),
    ))
}

/// Any error a backend may carry as the cause of a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a storage call failed, in terms that do not depend on the backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique value is taken; the payload names it (`"email"`, `"id"`).
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// The database cannot be reached (connection refused, pool timeout, ...). Retry later.
    #[error("storage unavailable")]
    Unavailable(#[source] BoxError),
    /// Anything else the backend reported.
    #[error("storage failure")]
    Backend(#[source] BoxError),
}

/// Result of a storage call.
pub type StoreResult<T> = Result<T, StoreError>;

/// One page of a list, newest first, with the exact number of matching rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// How many rows match in all.
    pub total: u64,
}

/// Paging and search of a moderation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// 1-based page number.
    pub page: u32,
    /// Rows per page, 1..=100.
    pub page_size: u32,
    /// Substring to look for; `%` and `_` match literally.
    pub search: Option<String>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            page: 1,
            page_size: 20,
            search: None,
        }
    }
}

/// The escape character of [`ListQuery::like_pattern`]; `!` needs no quoting in any SQL dialect.
pub const LIKE_ESCAPE: char = '!';

impl ListQuery {
    /// Rows to skip.
    pub fn offset(&self) -> u64 {
        u64::from(self.page.saturating_sub(1)) * u64::from(self.page_size)
    }

    /// The search as a `LIKE ... ESCAPE '!'` pattern (`%term%` with `%`, `_` and `!` escaped).
    pub fn like_pattern(&self) -> Option<String> {
        let term = self.search.as_deref().filter(|s| !s.is_empty())?;
        let mut pattern = String::with_capacity(term.len() + 2);
        pattern.push('%');
        for c in term.chars() {
            if matches!(c, '%' | '_' | LIKE_ESCAPE) {
                pattern.push(LIKE_ESCAPE);
            }
            pattern.push(c);
        }
        pattern.push('%');
        Some(pattern)
    }

    /// The search as a pattern over canonical e-mails (see
    /// [`canonical_email`](crate::model::canonical_email)), compared byte for byte: the term is
    /// brought to the canonical form, then escaped like [`ListQuery::like_pattern`].
    pub fn email_like_pattern(&self) -> Option<String> {
        let term = self.search.as_deref().filter(|s| !s.is_empty())?;
        ListQuery {
            search: Some(crate::model::canonical_text(term)),
            ..self.clone()
        }
        .like_pattern()
    }

    /// Whether the canonical form of an e-mail matches the search, with the meaning of
    /// [`ListQuery::email_like_pattern`]. For backends that filter in memory.
    pub fn matches_email(&self, email: &str) -> bool {
        match self.search.as_deref().filter(|s| !s.is_empty()) {
            None => true,
            Some(term) => {
                crate::model::canonical_email(email).contains(&crate::model::canonical_text(term))
            }
        }
    }

    /// Whether `text` matches the search, with the same meaning as [`ListQuery::like_pattern`]
    /// (case-insensitive substring). For backends that filter in memory.
    pub fn matches(&self, text: &str) -> bool {
        match self.search.as_deref().filter(|s| !s.is_empty()) {
            None => true,
            Some(term) => text.to_lowercase().contains(&term.to_lowercase()),
        }
    }
}

/// Which users a moderator lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserListQuery {
    /// Paging and search (username, email).
    pub list: ListQuery,
    /// Only banned (`Some(true)`) or only not banned (`Some(false)`) users.
    pub banned: Option<bool>,
}

/// The outcome of [`UserStore::set_role`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    /// Done.
    Changed,
    /// No such user.
    UserNotFound,
    /// Refused: the user is the last admin and would stop being one.
    LastAdmin,
}

/// The outcome of [`ModerationStore::ban_user`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanOutcome {
    /// Banned; this many sessions were revoked.
    Banned {
        /// Sessions deleted with the ban.
        revoked_sessions: u64,
    },
    /// The user already has an active ban; nothing changed.
    AlreadyBanned,
    /// No such user.
    UserNotFound,
}

/// Accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Adds an account, with the [`canonical_email`](crate::model::canonical_email) of its
    /// address. `AlreadyExists("email")` when another account has the same canonical address.
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    /// The account with this id.
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;
    /// The account whose address has the same [`canonical_email`](crate::model::canonical_email)
    /// form as `email`, compared byte for byte.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    /// Every account with exactly this username (usernames are not unique), oldest first.
    async fn users_by_username(&self, username: &str) -> StoreResult<Vec<User>>;
    /// Changes username and/or e-mail (with its canonical form); `false` when there is no such
    /// user. `AlreadyExists("email")` when the new e-mail is taken. For a change of address that
    /// its owner must be able to undo, see [`UserStore::change_email`].
    async fn update_profile(
        &self,
        id: &str,
        username: Option<&str>,
        email: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// In one transaction: replaces the address of `revert.user_id` by `revert.new_email` (and
    /// the username, when given), and stores `revert` so that the owner of `revert.old_email`
    /// can undo it. `false` (nothing changed) when there is no such user;
    /// `AlreadyExists("email")` when another account has the new address.
    async fn change_email(
        &self,
        revert: &EmailRevert,
        username: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Sets the password hash and, in the same transaction, deletes the user's sessions except
    /// those of `keep_family` (all of them when `None`) and invalidates every outstanding
    /// password-reset and 2FA-disable token of the user. Returns the number of sessions deleted.
    async fn update_password(
        &self,
        id: &str,
        password_hash: &str,
        keep_family: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Replaces the password hash only while it is still `expected` (compare-and-set, so a
    /// password changed meanwhile is never overwritten); sessions stay. `false` when the hash
    /// changed or there is no such user. Used to re-hash a password the user just proved, e.g.
    /// with the salt its username's other accounts share.
    async fn replace_password_hash(
        &self,
        id: &str,
        expected: &str,
        password_hash: &str,
    ) -> StoreResult<bool>;
    /// Sets `last_login_at`.
    async fn record_login(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()>;
    /// Changes a role, refusing to demote the last admin (checked in the same transaction).
    async fn set_role(&self, id: &str, role: Role, now: DateTime<Utc>) -> StoreResult<RoleChange>;
    /// Deletes the user and everything that is theirs, in one transaction. Warnings and bans
    /// they issued as a moderator stay, without a moderator. `false` when there is no such user.
    async fn delete_user(&self, id: &str) -> StoreResult<bool>;
    /// Users newest first, with their active ban at `now`.
    async fn list_users(
        &self,
        query: &UserListQuery,
        now: DateTime<Utc>,
    ) -> StoreResult<Page<UserWithBan>>;
    /// Counts for the admin dashboard.
    async fn stats(&self) -> StoreResult<Stats>;
}

/// Refresh-token sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Adds a session.
    async fn insert_session(&self, session: &Session) -> StoreResult<()>;
    /// The session whose token has this hash, live or rotated.
    async fn session_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Session>>;
    /// In one transaction: marks the live session of `old_token_hash` rotated at `now`,
    /// inserts `new` (its successor, of the same family), and deletes the family's sessions
    /// rotated before `forget_rotated_before`. `false`, and nothing changed, when
    /// `old_token_hash` is not a live session (unknown, or already rotated). Of concurrent
    /// rotations of one session exactly one succeeds, so a login never has two live branches.
    async fn rotate_session(
        &self,
        old_token_hash: &str,
        new: &Session,
        now: DateTime<Utc>,
        forget_rotated_before: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The live (not rotated) session of a login family, the newest if there are several.
    async fn live_session(&self, family_id: &str) -> StoreResult<Option<Session>>;
    /// Deletes the session of this token; `false` when there was none.
    async fn delete_session(&self, token_hash: &str) -> StoreResult<bool>;
    /// Deletes every session of a login family; returns how many.
    async fn delete_session_family(&self, family_id: &str) -> StoreResult<u64>;
    /// Deletes every session of a user; returns how many.
    async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<u64>;
    /// Deletes sessions that expired before `now`; returns how many.
    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64>;
}

/// Per-user settings.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// The user's settings; `None` when they never saved any (callers use the defaults).
    async fn settings(&self, user_id: &str) -> StoreResult<Option<Settings>>;
    /// Applies a patch atomically (starting from the defaults when there is no row yet) and
    /// returns the result.
    async fn update_settings(&self, user_id: &str, patch: &SettingsPatch) -> StoreResult<Settings>;
    /// The fallback color of `/color`: `None` when the user does not exist, else their
    /// `default_overlay_color` (the default when they have no settings). One round trip.
    async fn fallback_color(&self, user_id: &str) -> StoreResult<Option<String>>;
}

/// Overlays.
#[async_trait]
pub trait OverlayStore: Send + Sync {
    /// Adds an overlay.
    async fn insert_overlay(&self, overlay: &Overlay) -> StoreResult<()>;
    /// The overlay with this id.
    async fn overlay_by_id(&self, id: &str) -> StoreResult<Option<Overlay>>;
    /// A user's overlays, oldest first.
    async fn overlays_of(&self, owner_id: &str) -> StoreResult<Vec<Overlay>>;
    /// Changes name and/or template; the overlay as it is now, `None` when there is no such overlay.
    async fn update_overlay(
        &self,
        id: &str,
        patch: &OverlayPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Overlay>>;
    /// Deletes an overlay; `false` when there was none.
    async fn delete_overlay(&self, id: &str) -> StoreResult<bool>;
    /// All overlays newest first, searching name, template, id and owner id.
    async fn list_overlays(&self, query: &ListQuery) -> StoreResult<Page<OwnedOverlay>>;
}

/// TOTP secrets and the tickets of two-step logins.
#[async_trait]
pub trait TwoFactorStore: Send + Sync {
    /// The user's TOTP record, pending or verified.
    async fn two_factor(&self, user_id: &str) -> StoreResult<Option<TwoFactor>>;
    /// Stores a new pending secret, replacing any previous record.
    async fn save_pending_two_factor(
        &self,
        user_id: &str,
        secret_encrypted: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Marks the record verified; `false` when there is none.
    async fn mark_two_factor_verified(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Deletes the record; `false` when there was none.
    async fn delete_two_factor(&self, user_id: &str) -> StoreResult<bool>;
    /// Atomically records `step` as used when it is newer than the last used step.
    /// `false` when it was already used (or an older one was), so a code works once.
    async fn claim_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool>;
    /// Adds a login ticket.
    async fn insert_challenge(&self, challenge: &LoginChallenge) -> StoreResult<()>;
    /// The ticket with this id.
    async fn challenge(&self, id: &str) -> StoreResult<Option<LoginChallenge>>;
    /// Counts one attempt at a ticket's code, atomically, before the code is checked: `true`
    /// when the ticket is unused, unexpired at `now` and had fewer than `max_attempts`
    /// attempts (the count is then one higher); `false`, and nothing changed, otherwise. Of
    /// concurrent attempts at most `max_attempts` in all ever get `true`.
    async fn take_challenge_attempt(
        &self,
        id: &str,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Atomically marks an unused, unexpired ticket used; `false` otherwise.
    async fn consume_challenge(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool>;
}

/// One-time tokens sent by e-mail, and what redeeming them does.
#[async_trait]
pub trait OneTimeTokenStore: Send + Sync {
    /// Adds a token.
    async fn insert_one_time_token(
        &self,
        purpose: TokenPurpose,
        token: &OneTimeToken,
    ) -> StoreResult<()>;
    /// In one transaction: consumes an unused, unexpired password-reset token, sets the new
    /// password hash, removes 2FA, deletes every session and invalidates every other
    /// outstanding password-reset and 2FA-disable token of the user. The user id, or `None`
    /// when the token is unknown, used or expired (then nothing changes).
    async fn redeem_password_reset(
        &self,
        token_hash: &str,
        new_password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>>;
    /// In one transaction: consumes an unused, unexpired 2FA-disable token, removes 2FA and
    /// invalidates every other outstanding password-reset and 2FA-disable token of the user.
    /// The user id, or `None` when the token is unknown, used or expired.
    async fn redeem_two_factor_disable(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>>;
    /// In one transaction: consumes an unused, unexpired e-mail revert token, puts its
    /// `old_email` back, deletes every session of the user, invalidates every outstanding
    /// password-reset and 2FA-disable token, and every revert token of the user made at the
    /// same time or later (older ones, which restore an even earlier address, stay usable).
    async fn redeem_email_revert(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<EmailRevertOutcome>;
    /// Deletes every one-time token (password reset, 2FA disable, e-mail revert) and login
    /// ticket that expired before `now`; returns how many.
    async fn delete_expired_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64>;
}

/// Each user's Spotify app and connection.
#[async_trait]
pub trait SpotifyStore: Send + Sync {
    /// The user's credentials (all `None` when never set); `None` when there is no such user
    /// (one read tells both: the now-playing hub re-reads them for every polled user).
    async fn spotify_credentials(&self, user_id: &str) -> StoreResult<Option<SpotifyCredentials>>;
    /// Applies a patch atomically and returns the result.
    async fn update_spotify_credentials(
        &self,
        user_id: &str,
        patch: &SpotifyCredentialsPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<SpotifyCredentials>;
    /// Compare-and-set of the refresh token: when the stored (encrypted) refresh token is
    /// exactly `expected`, replaces it by `new` (`None` clears it) and returns `true`; else
    /// changes nothing and returns `false` (a newer token was stored meanwhile, or none is).
    /// Atomic with every other write of the user's credentials.
    async fn replace_spotify_refresh_token(
        &self,
        user_id: &str,
        expected: &str,
        new: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Records an authorization in progress. In the same transaction, deletes every
    /// authorization (of any user) expired at `now`, and the user's oldest ones beyond
    /// `max_per_user` (the new one included), so a user holds at most that many.
    async fn insert_spotify_authorization(
        &self,
        authorization: &SpotifyAuthorization,
        max_per_user: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Atomically takes (deletes and returns) an authorization of `user_id` unexpired at `now`:
    /// the one whose state hashes to `state_hash`, or the user's newest when `None`. `None`
    /// when there is none: unknown, another user's, taken already, or expired. Each
    /// authorization is taken at most once, however many callers race for it.
    async fn take_spotify_authorization(
        &self,
        user_id: &str,
        state_hash: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SpotifyAuthorization>>;
}

/// Warnings and bans.
#[async_trait]
pub trait ModerationStore: Send + Sync {
    /// Adds a warning.
    async fn insert_warning(&self, warning: &Warning) -> StoreResult<()>;
    /// Warnings newest first, of one user or of all; search covers reason, ids and both
    /// parties' usernames and e-mails.
    async fn list_warnings(
        &self,
        user_id: Option<&str>,
        query: &ListQuery,
    ) -> StoreResult<Page<WarningView>>;
    /// Deletes a warning; `false` when there was none.
    async fn delete_warning(&self, id: &str) -> StoreResult<bool>;
    /// Deletes every warning of a user; returns how many.
    async fn delete_user_warnings(&self, user_id: &str) -> StoreResult<u64>;
    /// The user's active ban at `now`, newest first if several.
    async fn active_ban(&self, user_id: &str, now: DateTime<Utc>) -> StoreResult<Option<Ban>>;
    /// In one transaction: refuses when the user has an active ban, else inserts the ban and
    /// deletes every session of the user.
    async fn ban_user(&self, ban: &Ban, now: DateTime<Utc>) -> StoreResult<BanOutcome>;
    /// Lifts the user's active bans; the time they were lifted, or `None` when there was none.
    async fn revoke_ban(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DateTime<Utc>>>;
    /// Users under an active permanent ban made before `banned_before`: the purge job deletes them.
    async fn purgeable_users(&self, banned_before: DateTime<Utc>) -> StoreResult<Vec<String>>;
}

/// Everything MelodyHue stores: all the parts above, plus a health check.
#[async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + SettingsStore
    + OverlayStore
    + TwoFactorStore
    + OneTimeTokenStore
    + SpotifyStore
    + ModerationStore
{
    /// Checks that the backend answers (for `/health`).
    async fn ping(&self) -> StoreResult<()>;

    /// How busy the connection pool is, for `/metrics`; `None` for a backend without one.
    fn pool_usage(&self) -> Option<PoolUsage> {
        None
    }
}

/// A connection pool's occupancy at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections open now, idle or in use.
    pub open: u32,
    /// Open connections waiting for work.
    pub idle: u32,
    /// The most the pool will open.
    pub max: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards() {
        let query = ListQuery {
            search: Some("50%_off!".into()),
            ..ListQuery::default()
        };
        assert_eq!(query.like_pattern().as_deref(), Some("%50!%!_off!!%"));
        assert_eq!(ListQuery::default().like_pattern(), None);
    }

    #[test]
    fn offset_of_pages() {
        let query = ListQuery {
            page: 3,
            page_size: 20,
            search: None,
        };
        assert_eq!(query.offset(), 40);
    }
}
