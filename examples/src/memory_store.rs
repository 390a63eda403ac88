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

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use melodyhue_core::model::{
    Ban, EmailRevert, EmailRevertOutcome, LoginChallenge, OneTimeToken, Overlay, OverlayPatch,
    OwnedOverlay, Role, Session, Settings, SettingsPatch, SpotifyAuthorization, SpotifyCredentials,
    SpotifyCredentialsPatch, Stats, TokenPurpose, TwoFactor, User, UserWithBan, Warning,
    WarningView, canonical_email,
};
use melodyhue_core::store::{
    BanOutcome, ListQuery, ModerationStore, OneTimeTokenStore, OverlayStore, Page, RoleChange,
    SessionStore, SettingsStore, SpotifyStore, Store, StoreError, StoreResult, TwoFactorStore,
    UserListQuery, UserStore,
};

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
impl UserStore for MemoryStore {
    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        let mut state = self.state();
        if state.email_taken(&user.email, None) {
            return Err(StoreError::AlreadyExists("email"));
        }
        if state.users.contains_key(&user.id) {
            return Err(StoreError::AlreadyExists("id"));
        }
        state.users.insert(user.id.clone(), user.clone());
        Ok(())
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        Ok(self.state().users.get(id).cloned())
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let email = canonical_email(email);
        Ok(self
            .state()
            .users
            .values()
            .find(|u| canonical_email(&u.email) == email)
            .cloned())
    }

    async fn users_by_username(&self, username: &str) -> StoreResult<Vec<User>> {
        let mut users: Vec<User> = self
            .state()
            .users
            .values()
            .filter(|u| u.username == username)
            .cloned()
            .collect();
        users.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(users)
    }

    async fn update_profile(
        &self,
        id: &str,
        username: Option<&str>,
        email: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut state = self.state();
        if email.is_some_and(|email| state.email_taken(email, Some(id))) {
            return Err(StoreError::AlreadyExists("email"));
        }
        let Some(user) = state.users.get_mut(id) else {
            return Ok(false);
        };
        if let Some(username) = username {
            user.username = username.to_owned();
        }
        if let Some(email) = email {
            user.email = email.to_owned();
        }
        user.updated_at = now;
        Ok(true)
    }

    async fn change_email(
        &self,
        revert: &EmailRevert,
        username: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut state = self.state();
        if state.email_taken(&revert.new_email, Some(&revert.user_id)) {
            return Err(StoreError::AlreadyExists("email"));
        }
        let Some(user) = state.users.get_mut(&revert.user_id) else {
            return Ok(false);
        };
        if let Some(username) = username {
            user.username = username.to_owned();
        }
        user.email = revert.new_email.clone();
        user.updated_at = now;
        state
            .email_reverts
            .insert(revert.token_hash.clone(), (revert.clone(), None));
        Ok(true)
    }

    async fn update_password(
        &self,
        id: &str,
        password_hash: &str,
        keep_family: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut state = self.state();
        if let Some(user) = state.users.get_mut(id) {
            user.password_hash = password_hash.to_owned();
            user.updated_at = now;
        }
        state.invalidate_mailed_tokens(id, now);
        Ok(state.delete_sessions(|s| s.user_id != id || Some(s.family_id.as_str()) == keep_family))
    }

    async fn replace_password_hash(
        &self,
        id: &str,
        expected: &str,
        password_hash: &str,
    ) -> StoreResult<bool> {
        match self.state().users.get_mut(id) {
            Some(user) if user.password_hash == expected => {
                user.password_hash = password_hash.to_owned();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn record_login(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()> {
        if let Some(user) = self.state().users.get_mut(id) {
            user.last_login_at = Some(now);
        }
        Ok(())
    }

    async fn set_role(&self, id: &str, role: Role, now: DateTime<Utc>) -> StoreResult<RoleChange> {
        let mut state = self.state();
        let admins = state
            .users
            .values()
            .filter(|u| u.role == Role::Admin)
            .count();
        let Some(user) = state.users.get_mut(id) else {
            return Ok(RoleChange::UserNotFound);
        };
        if user.role == Role::Admin && role != Role::Admin && admins <= 1 {
            return Ok(RoleChange::LastAdmin);
        }
        user.role = role;
        user.updated_at = now;
        Ok(RoleChange::Changed)
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let mut state = self.state();
        if state.users.remove(id).is_none() {
            return Ok(false);
        }
        state.delete_sessions(|s| s.user_id != id);
        state.settings.remove(id);
        state.overlays.retain(|_, o| o.owner_id != id);
        state.two_factor.remove(id);
        state.challenges.retain(|_, c| c.user_id != id);
        state.tokens.retain(|_, t| t.token.user_id != id);
        state.email_reverts.retain(|_, (r, _)| r.user_id != id);
        state.spotify.remove(id);
        state.spotify_authorizations.retain(|_, a| a.user_id != id);
        state.warnings.retain(|_, w| w.user_id != id);
        state.bans.retain(|_, b| b.user_id != id);
        // What they did as a moderator stays, without a moderator.
        for warning in state.warnings.values_mut() {
            if warning.moderator_id.as_deref() == Some(id) {
                warning.moderator_id = None;
            }
        }
        for ban in state.bans.values_mut() {
            if ban.moderator_id.as_deref() == Some(id) {
                ban.moderator_id = None;
            }
        }
        Ok(true)
    }

    async fn list_users(
        &self,
        query: &UserListQuery,
        now: DateTime<Utc>,
    ) -> StoreResult<Page<UserWithBan>> {
        let state = self.state();
        let matching = state
            .users
            .values()
            .filter(|u| query.list.matches(&u.username) || query.list.matches_email(&u.email))
            .map(|u| UserWithBan {
                user: u.clone(),
                active_ban: state.active_ban(&u.id, now).cloned(),
            })
            .filter(|u| {
                query
                    .banned
                    .is_none_or(|banned| u.active_ban.is_some() == banned)
            })
            .collect();
        Ok(newest_first_page(matching, &query.list, |u| {
            (u.user.created_at, u.user.id.clone())
        }))
    }

    async fn stats(&self) -> StoreResult<Stats> {
        let state = self.state();
        let with_role = |role| state.users.values().filter(|u| u.role == role).count() as u64;
        Ok(Stats {
            users_count: state.users.len() as u64,
            overlays_count: state.overlays.len() as u64,
            moderators_count: with_role(Role::Moderator),
            admins_count: with_role(Role::Admin),
            active_2fa_count: state
                .two_factor
                .values()
                .filter(|t| t.verified_at.is_some())
                .count() as u64,
            last_user_registered_at: state.users.values().map(|u| u.created_at).max(),
        })
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        let mut state = self.state();
        state.require_user(&session.user_id)?;
        if state.sessions.contains_key(&session.token_hash) {
            return Err(StoreError::AlreadyExists("id"));
        }
        state
            .sessions
            .insert(session.token_hash.clone(), session.clone());
        Ok(())
    }

    async fn session_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Session>> {
        Ok(self.state().sessions.get(token_hash).cloned())
    }

    async fn rotate_session(
        &self,
        old_token_hash: &str,
        new: &Session,
        now: DateTime<Utc>,
        forget_rotated_before: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut state = self.state();
        match state.sessions.get_mut(old_token_hash) {
            Some(old) if old.rotated_at.is_none() && old.family_id == new.family_id => {
                old.rotated_at = Some(now);
            }
            _ => return Ok(false),
        }
        state.sessions.insert(new.token_hash.clone(), new.clone());
        state.delete_sessions(|s| {
            s.family_id != new.family_id || s.rotated_at.is_none_or(|r| r >= forget_rotated_before)
        });
        Ok(true)
    }

    async fn live_session(&self, family_id: &str) -> StoreResult<Option<Session>> {
        Ok(self
            .state()
            .sessions
            .values()
            .filter(|s| s.family_id == family_id && s.rotated_at.is_none())
            .max_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
            .cloned())
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<bool> {
        Ok(self.state().sessions.remove(token_hash).is_some())
    }

    async fn delete_session_family(&self, family_id: &str) -> StoreResult<u64> {
        Ok(self.state().delete_sessions(|s| s.family_id != family_id))
    }

    async fn delete_user_sessions(&self, user_id: &str) -> StoreResult<u64> {
        Ok(self.state().delete_sessions(|s| s.user_id != user_id))
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        Ok(self.state().delete_sessions(|s| s.expires_at >= now))
    }
}

#[async_trait]
impl SettingsStore for MemoryStore {
    async fn settings(&self, user_id: &str) -> StoreResult<Option<Settings>> {
        Ok(self.state().settings.get(user_id).cloned())
    }

    async fn update_settings(&self, user_id: &str, patch: &SettingsPatch) -> StoreResult<Settings> {
        let mut state = self.state();
        state.require_user(user_id)?;
        let settings = state.settings.entry(user_id.to_owned()).or_default();
        *settings = patch.apply_to(settings.clone());
        Ok(settings.clone())
    }

    async fn fallback_color(&self, user_id: &str) -> StoreResult<Option<String>> {
        let state = self.state();
        if !state.users.contains_key(user_id) {
            return Ok(None);
        }
        Ok(Some(
            state
                .settings
                .get(user_id)
                .cloned()
                .unwrap_or_default()
                .default_overlay_color,
        ))
    }
}

#[async_trait]
impl OverlayStore for MemoryStore {
    async fn insert_overlay(&self, overlay: &Overlay) -> StoreResult<()> {
        let mut state = self.state();
        state.require_user(&overlay.owner_id)?;
        if state.overlays.contains_key(&overlay.id) {
            return Err(StoreError::AlreadyExists("id"));
        }
        state.overlays.insert(overlay.id.clone(), overlay.clone());
        Ok(())
    }

    async fn overlay_by_id(&self, id: &str) -> StoreResult<Option<Overlay>> {
        Ok(self.state().overlays.get(id).cloned())
    }

    async fn overlays_of(&self, owner_id: &str) -> StoreResult<Vec<Overlay>> {
        let mut overlays: Vec<Overlay> = self
            .state()
            .overlays
            .values()
            .filter(|o| o.owner_id == owner_id)
            .cloned()
            .collect();
        overlays.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(overlays)
    }

    async fn update_overlay(
        &self,
        id: &str,
        patch: &OverlayPatch,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Overlay>> {
        let mut state = self.state();
        let Some(overlay) = state.overlays.get_mut(id) else {
            return Ok(None);
        };
        if let Some(name) = &patch.name {
            name.as_str().clone_into(&mut overlay.name);
        }
        if let Some(template) = &patch.template {
            template.as_str().clone_into(&mut overlay.template);
        }
        overlay.updated_at = now;
        Ok(Some(overlay.clone()))
    }

    async fn delete_overlay(&self, id: &str) -> StoreResult<bool> {
        Ok(self.state().overlays.remove(id).is_some())
    }

    async fn list_overlays(&self, query: &ListQuery) -> StoreResult<Page<OwnedOverlay>> {
        let state = self.state();
        let matching = state
            .overlays
            .values()
            .filter_map(|o| {
                let owner = state.users.get(&o.owner_id)?;
                let fields = [&o.name, &o.template, &o.id, &o.owner_id, &owner.username];
                fields
                    .iter()
                    .any(|field| query.matches(field))
                    .then(|| OwnedOverlay {
                        overlay: o.clone(),
                        owner_username: owner.username.clone(),
                    })
            })
            .collect();
        Ok(newest_first_page(matching, query, |o| {
            (o.overlay.created_at, o.overlay.id.clone())
        }))
    }
}

#[async_trait]
impl TwoFactorStore for MemoryStore {
    async fn two_factor(&self, user_id: &str) -> StoreResult<Option<TwoFactor>> {
        Ok(self.state().two_factor.get(user_id).cloned())
    }

    async fn save_pending_two_factor(
        &self,
        user_id: &str,
        secret_encrypted: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut state = self.state();
        state.require_user(user_id)?;
        state.two_factor.insert(
            user_id.to_owned(),
            TwoFactor {
                user_id: user_id.to_owned(),
                secret_encrypted: secret_encrypted.to_owned(),
                enabled_at: now,
                verified_at: None,
                last_used_step: None,
            },
        );
        Ok(())
    }

    async fn mark_two_factor_verified(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut state = self.state();
        let Some(two_factor) = state.two_factor.get_mut(user_id) else {
            return Ok(false);
        };
        two_factor.verified_at = Some(now);
        Ok(true)
    }

    async fn delete_two_factor(&self, user_id: &str) -> StoreResult<bool> {
        Ok(self.state().two_factor.remove(user_id).is_some())
    }

    async fn claim_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        let mut state = self.state();
        let Some(two_factor) = state.two_factor.get_mut(user_id) else {
            return Ok(false);
        };
        if two_factor.last_used_step.is_some_and(|last| last >= step) {
            return Ok(false);
        }
        two_factor.last_used_step = Some(step);
        Ok(true)
    }

    async fn insert_challenge(&self, challenge: &LoginChallenge) -> StoreResult<()> {
        let mut state = self.state();
        state.require_user(&challenge.user_id)?;
        if state.challenges.contains_key(&challenge.id) {
            return Err(StoreError::AlreadyExists("id"));
        }
        state
            .challenges
            .insert(challenge.id.clone(), challenge.clone());
        Ok(())
    }

    async fn challenge(&self, id: &str) -> StoreResult<Option<LoginChallenge>> {
        Ok(self.state().challenges.get(id).cloned())
    }

    async fn take_challenge_attempt(
        &self,
        id: &str,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        match self.state().challenges.get_mut(id) {
            Some(challenge)
                if challenge.used_at.is_none()
                    && challenge.expires_at > now
                    && challenge.attempts < max_attempts =>
            {
                challenge.attempts += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn consume_challenge(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let mut state = self.state();
        match state.challenges.get_mut(id) {
            Some(challenge) if challenge.used_at.is_none() && challenge.expires_at > now => {
                challenge.used_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl OneTimeTokenStore for MemoryStore {
    async fn insert_one_time_token(
        &self,
        purpose: TokenPurpose,
        token: &OneTimeToken,
    ) -> StoreResult<()> {
        let mut state = self.state();
        state.require_user(&token.user_id)?;
        let key = (purpose, token.token_hash.clone());
        if state.tokens.contains_key(&key) {
            return Err(StoreError::AlreadyExists("id"));
        }
        state.tokens.insert(
            key,
            IssuedToken {
                token: token.clone(),
                used_at: None,
            },
        );
        Ok(())
    }

    async fn redeem_password_reset(
        &self,
        token_hash: &str,
        new_password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>> {
        let mut state = self.state();
        let Some(user_id) = state.consume_token(TokenPurpose::PasswordReset, token_hash, now)
        else {
            return Ok(None);
        };
        if let Some(user) = state.users.get_mut(&user_id) {
            user.password_hash = new_password_hash.to_owned();
            user.updated_at = now;
        }
        state.two_factor.remove(&user_id);
        state.delete_sessions(|s| s.user_id != user_id);
        state.invalidate_mailed_tokens(&user_id, now);
        Ok(Some(user_id))
    }

    async fn redeem_two_factor_disable(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>> {
        let mut state = self.state();
        let user_id = state.consume_token(TokenPurpose::TwoFactorDisable, token_hash, now);
        if let Some(user_id) = &user_id {
            state.two_factor.remove(user_id);
            state.invalidate_mailed_tokens(user_id, now);
        }
        Ok(user_id)
    }

    async fn redeem_email_revert(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<EmailRevertOutcome> {
        let mut state = self.state();
        let Some((revert, None)) = state.email_reverts.get(token_hash).cloned() else {
            return Ok(EmailRevertOutcome::Invalid);
        };
        if revert.expires_at <= now {
            return Ok(EmailRevertOutcome::Invalid);
        }
        if state.email_taken(&revert.old_email, Some(&revert.user_id)) {
            return Ok(EmailRevertOutcome::AddressTaken);
        }
        let Some(user) = state.users.get_mut(&revert.user_id) else {
            return Ok(EmailRevertOutcome::Invalid);
        };
        let replaced_email = std::mem::replace(&mut user.email, revert.old_email.clone());
        user.updated_at = now;
        // This revert and every later one are spent; earlier ones stay usable.
        for (hash, (other, used_at)) in &mut state.email_reverts {
            if other.user_id == revert.user_id
                && used_at.is_none()
                && (hash == token_hash || other.created_at >= revert.created_at)
            {
                *used_at = Some(now);
            }
        }
        state.delete_sessions(|s| s.user_id != revert.user_id);
        state.invalidate_mailed_tokens(&revert.user_id, now);
        Ok(EmailRevertOutcome::Reverted {
            user_id: revert.user_id,
            restored_email: revert.old_email,
            replaced_email,
        })
    }

    async fn delete_expired_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut state = self.state();
        let before = state.tokens.len() + state.email_reverts.len() + state.challenges.len();
        state.tokens.retain(|_, t| t.token.expires_at >= now);
        state.email_reverts.retain(|_, (r, _)| r.expires_at >= now);
        state.challenges.retain(|_, c| c.expires_at >= now);
        let after = state.tokens.len() + state.email_reverts.len() + state.challenges.len();
        Ok((before - after) as u64)
    }
}

#[async_trait]
impl SpotifyStore for MemoryStore {
    async fn spotify_credentials(&self, user_id: &str) -> StoreResult<SpotifyCredentials> {
        Ok(self
            .state()
            .spotify
            .get(user_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn update_spotify_credentials(
        &self,
        user_id: &str,
        patch: &SpotifyCredentialsPatch,
        _now: DateTime<Utc>,
    ) -> StoreResult<SpotifyCredentials> {
        let mut state = self.state();
        state.require_user(user_id)?;
        let credentials = state.spotify.entry(user_id.to_owned()).or_default();
        let fields = [
            (&patch.client_id, &mut credentials.client_id),
            (
                &patch.client_secret_encrypted,
                &mut credentials.client_secret_encrypted,
            ),
            (
                &patch.refresh_token_encrypted,
                &mut credentials.refresh_token_encrypted,
            ),
        ];
        for (change, field) in fields {
            if let Some(value) = change {
                field.clone_from(value);
            }
        }
        Ok(credentials.clone())
    }

    async fn replace_spotify_refresh_token(
        &self,
        user_id: &str,
        expected: &str,
        new: Option<&str>,
        _now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut state = self.state();
        let Some(credentials) = state.spotify.get_mut(user_id) else {
            return Ok(false);
        };
        if credentials.refresh_token_encrypted.as_deref() != Some(expected) {
            return Ok(false);
        }
        credentials.refresh_token_encrypted = new.map(str::to_owned);
        Ok(true)
    }

    async fn insert_spotify_authorization(
        &self,
        authorization: &SpotifyAuthorization,
        max_per_user: u32,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut state = self.state();
        state.require_user(&authorization.user_id)?;
        if state
            .spotify_authorizations
            .contains_key(&authorization.state_hash)
        {
            return Err(StoreError::AlreadyExists("id"));
        }
        state
            .spotify_authorizations
            .retain(|_, a| a.expires_at > now);
        state
            .spotify_authorizations
            .insert(authorization.state_hash.clone(), authorization.clone());
        let mut newest_first: Vec<(DateTime<Utc>, String)> = state
            .spotify_authorizations
            .values()
            .filter(|a| a.user_id == authorization.user_id)
            .map(|a| (a.created_at, a.state_hash.clone()))
            .collect();
        newest_first.sort_by(|a, b| b.cmp(a));
        let keep = usize::try_from(max_per_user).unwrap_or(usize::MAX);
        for (_, state_hash) in newest_first.iter().skip(keep) {
            state.spotify_authorizations.remove(state_hash);
        }
        Ok(())
    }

    async fn take_spotify_authorization(
        &self,
        user_id: &str,
        state_hash: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SpotifyAuthorization>> {
        let mut state = self.state();
        let found = state
            .spotify_authorizations
            .values()
            .filter(|a| a.user_id == user_id && a.expires_at > now)
            .filter(|a| state_hash.is_none_or(|hash| a.state_hash == hash))
            .max_by(|a, b| (a.created_at, &a.state_hash).cmp(&(b.created_at, &b.state_hash)))
            .map(|a| a.state_hash.clone());
        Ok(found.and_then(|hash| state.spotify_authorizations.remove(&hash)))
    }
}

#[async_trait]
impl ModerationStore for MemoryStore {
    async fn insert_warning(&self, warning: &Warning) -> StoreResult<()> {
        let mut state = self.state();
        state.require_user(&warning.user_id)?;
        if state.warnings.contains_key(&warning.id) {
            return Err(StoreError::AlreadyExists("id"));
        }
        state.warnings.insert(warning.id.clone(), warning.clone());
        Ok(())
    }

    async fn list_warnings(
        &self,
        user_id: Option<&str>,
        query: &ListQuery,
    ) -> StoreResult<Page<WarningView>> {
        let state = self.state();
        let matching = state
            .warnings
            .values()
            .filter(|w| user_id.is_none_or(|id| w.user_id == id))
            .map(|w| {
                let user = state.users.get(&w.user_id);
                let moderator = w.moderator_id.as_ref().and_then(|id| state.users.get(id));
                WarningView {
                    warning: w.clone(),
                    user_username: user.map(|u| u.username.clone()),
                    user_email: user.map(|u| u.email.clone()),
                    moderator_username: moderator.map(|u| u.username.clone()),
                    moderator_email: moderator.map(|u| u.email.clone()),
                }
            })
            .filter(|view| {
                let w = &view.warning;
                let texts = [
                    Some(&w.reason),
                    Some(&w.id),
                    Some(&w.user_id),
                    w.moderator_id.as_ref(),
                    view.user_username.as_ref(),
                    view.moderator_username.as_ref(),
                ];
                let emails = [view.user_email.as_ref(), view.moderator_email.as_ref()];
                texts
                    .into_iter()
                    .flatten()
                    .any(|field| query.matches(field))
                    || emails
                        .into_iter()
                        .flatten()
                        .any(|email| query.matches_email(email))
            })
            .collect();
        Ok(newest_first_page(matching, query, |view| {
            (view.warning.created_at, view.warning.id.clone())
        }))
    }

    async fn delete_warning(&self, id: &str) -> StoreResult<bool> {
        Ok(self.state().warnings.remove(id).is_some())
    }

    async fn delete_user_warnings(&self, user_id: &str) -> StoreResult<u64> {
        let mut state = self.state();
        let before = state.warnings.len();
        state.warnings.retain(|_, w| w.user_id != user_id);
        Ok((before - state.warnings.len()) as u64)
    }

    async fn active_ban(&self, user_id: &str, now: DateTime<Utc>) -> StoreResult<Option<Ban>> {
        Ok(self.state().active_ban(user_id, now).cloned())
    }

    async fn ban_user(&self, ban: &Ban, now: DateTime<Utc>) -> StoreResult<BanOutcome> {
        let mut state = self.state();
        if !state.users.contains_key(&ban.user_id) {
            return Ok(BanOutcome::UserNotFound);
        }
        if state.active_ban(&ban.user_id, now).is_some() {
            return Ok(BanOutcome::AlreadyBanned);
        }
        state.bans.insert(ban.id.clone(), ban.clone());
        let revoked_sessions = state.delete_sessions(|s| s.user_id != ban.user_id);
        Ok(BanOutcome::Banned { revoked_sessions })
    }

    async fn revoke_ban(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        let mut revoked = false;
        for ban in self.state().bans.values_mut() {
            if ban.user_id == user_id && ban.is_active_at(now) {
                ban.revoked_at = Some(now);
                revoked = true;
            }
        }
        Ok(revoked.then_some(now))
    }

    async fn purgeable_users(&self, banned_before: DateTime<Utc>) -> StoreResult<Vec<String>> {
        let mut users: Vec<String> = self
            .state()
            .bans
            .values()
            .filter(|b| b.revoked_at.is_none() && b.until.is_none() && b.created_at < banned_before)
            .map(|b| b.user_id.clone())
            .collect();
        users.sort();
        users.dedup();
        Ok(users)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}
