//! [`SettingsStore`] for [`MemoryStore`]: each user's settings.

use async_trait::async_trait;
use melodyhue_core::model::{Settings, SettingsPatch};
use melodyhue_core::store::{SettingsStore, StoreResult};

use super::MemoryStore;

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
