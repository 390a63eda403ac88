//! A storage backend of your own: every MelodyHue storage trait over plain in-memory maps.
//!
//! This is the whole recipe for a custom backend:
//!
//! 1. implement [`UserStore`], [`SessionStore`], [`SettingsStore`], [`OverlayStore`],
//!    [`TwoFactorStore`], [`OneTimeTokenStore`], [`SpotifyStore`], [`ModerationStore`] and
//!    [`Store`] for one type, following each method's documentation;
//! 2. run the conformance kit on it (`melodyhue_testkit::store_conformance!`, a
//!    dev-dependency; see `tests/memory_store_conformance.rs`);
//! 3. hand it to [`melodyhue_core::App::builder`] (see `src/bin/serve_in_memory.rs`).
//!
//! Everything lives in one [`State`] behind one mutex. Each method takes the lock once, so every
//! method is atomic, which is what the traits ask of multi-row changes. The lock is never held
//! across an `.await`. Data is lost when the process ends: this store is for demos and tests.
//!
//! Each trait's implementation is in a file of its own, named like the SQL backend's
//! (`users.rs`, `sessions.rs`, ...); this one holds the state and what they share.
//!
//! [`UserStore`]: melodyhue_core::store::UserStore
//! [`SessionStore`]: melodyhue_core::store::SessionStore
//! [`SettingsStore`]: melodyhue_core::store::SettingsStore
//! [`OverlayStore`]: melodyhue_core::store::OverlayStore
//! [`TwoFactorStore`]: melodyhue_core::store::TwoFactorStore
//! [`OneTimeTokenStore`]: melodyhue_core::store::OneTimeTokenStore
//! [`SpotifyStore`]: melodyhue_core::store::SpotifyStore
//! [`ModerationStore`]: melodyhue_core::store::ModerationStore

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use melodyhue_core::model::{
    Ban, EmailRevert, LoginChallenge, OneTimeToken, Overlay, Session, Settings,
    SpotifyAuthorization, SpotifyCredentials, TokenPurpose, TwoFactor, User, Warning,
    canonical_email,
};
use melodyhue_core::store::{ListQuery, Page, Store, StoreError, StoreResult};

mod moderation;
mod overlays;
mod sessions;
mod settings;
mod spotify;
mod tokens;
mod two_factor;
mod users;

/// An in-memory MelodyHue store. `MemoryStore::default()` is empty.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

/// Everything the store holds, keyed like the SQL tables.
#[derive(Debug, Default)]
struct State {
    users: HashMap<String, User>,
    /// By token hash, the way sessions are looked up.
    sessions: HashMap<String, Session>,
    settings: HashMap<String, Settings>,
    overlays: HashMap<String, Overlay>,
    two_factor: HashMap<String, TwoFactor>,
    challenges: HashMap<String, LoginChallenge>,
    /// By purpose and token hash.
    tokens: HashMap<(TokenPurpose, String), IssuedToken>,
    /// E-mail revert tokens by hash, with when they were used.
    email_reverts: HashMap<String, (EmailRevert, Option<DateTime<Utc>>)>,
    spotify: HashMap<String, SpotifyCredentials>,
    /// Spotify authorizations in progress, by state hash.
    spotify_authorizations: HashMap<String, SpotifyAuthorization>,
    warnings: HashMap<String, Warning>,
    bans: HashMap<String, Ban>,
}

#[derive(Debug)]
struct IssuedToken {
    token: OneTimeToken,
    used_at: Option<DateTime<Utc>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// The state, locked. A panic elsewhere while holding the lock cannot leave half a change
    /// (every method changes the state only after its checks), so a poisoned lock is usable.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Whether another account has the same canonical address.
    fn email_taken(&self, email: &str, except_id: Option<&str>) -> bool {
        let email = canonical_email(email);
        self.users
            .values()
            .any(|u| Some(u.id.as_str()) != except_id && canonical_email(&u.email) == email)
    }

    /// Marks every outstanding password-reset and 2FA-disable token of a user used.
    fn invalidate_mailed_tokens(&mut self, user_id: &str, now: DateTime<Utc>) {
        for issued in self.tokens.values_mut() {
            if issued.token.user_id == user_id && issued.used_at.is_none() {
                issued.used_at = Some(now);
            }
        }
    }

    /// Like a foreign key: rows that belong to a user need the user.
    fn require_user(&self, id: &str) -> StoreResult<()> {
        if self.users.contains_key(id) {
            Ok(())
        } else {
            Err(StoreError::Backend(format!("no user {id:?}").into()))
        }
    }

    fn active_ban(&self, user_id: &str, now: DateTime<Utc>) -> Option<&Ban> {
        self.bans
            .values()
            .filter(|b| b.user_id == user_id && b.is_active_at(now))
            .max_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
    }

    fn delete_sessions(&mut self, keep: impl Fn(&Session) -> bool) -> u64 {
        let before = self.sessions.len();
        self.sessions.retain(|_, s| keep(s));
        (before - self.sessions.len()) as u64
    }

    /// Marks a redeemable one-time token used; its user id.
    fn consume_token(
        &mut self,
        purpose: TokenPurpose,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Option<String> {
        let issued = self.tokens.get_mut(&(purpose, token_hash.to_owned()))?;
        if issued.used_at.is_some() || issued.token.expires_at <= now {
            return None;
        }
        issued.used_at = Some(now);
        Some(issued.token.user_id.clone())
    }
}

/// One page of `items`, newest first (by creation time, then id), with the total.
fn newest_first_page<T>(
    mut items: Vec<T>,
    query: &ListQuery,
    key: impl Fn(&T) -> (DateTime<Utc>, String),
) -> Page<T> {
    items.sort_by_key(|item| std::cmp::Reverse(key(item)));
    let total = items.len() as u64;
    let offset = usize::try_from(query.offset()).unwrap_or(usize::MAX);
    let items = items
        .into_iter()
        .skip(offset)
        .take(query.page_size as usize)
        .collect();
    Page { items, total }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}
