//! Per-user settings.

use super::Result;
use crate::App;
use crate::cluster::changes::Change;
use crate::model::{Settings, SettingsPatch, User};

/// Per-user settings.
///
/// A view of an [`App`], from [`App::settings`].
#[derive(Debug, Clone, Copy)]
pub struct UserSettings<'a> {
    pub(crate) app: &'a App,
}

impl<'a> UserSettings<'a> {
    /// The caller's settings (the defaults until they change one).
    pub async fn settings_of(self, user: &User) -> Result<Settings> {
        Ok(self
            .app
            .inner()
            .store
            .settings(&user.id)
            .await?
            .unwrap_or_default())
    }

    /// Changes some of the caller's settings atomically.
    pub async fn update_settings(self, user: &User, patch: &SettingsPatch) -> Result<Settings> {
        let settings = self
            .app
            .inner()
            .store
            .update_settings(&user.id, patch)
            .await?;
        self.app.announce(Change::Settings {
            user_id: user.id.clone(),
        });
        Ok(settings)
    }
}
