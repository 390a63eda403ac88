//! [`SpotifyStore`] for [`MemoryStore`]: Spotify credentials and authorizations in progress.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use melodyhue_core::model::{SpotifyAuthorization, SpotifyCredentials, SpotifyCredentialsPatch};
use melodyhue_core::store::{SpotifyStore, StoreError, StoreResult};

use super::MemoryStore;

#[async_trait]
impl SpotifyStore for MemoryStore {
    async fn spotify_credentials(&self, user_id: &str) -> StoreResult<Option<SpotifyCredentials>> {
        let state = self.state();
        Ok(state
            .users
            .contains_key(user_id)
            .then(|| state.spotify.get(user_id).cloned().unwrap_or_default()))
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
