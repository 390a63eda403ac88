//! Per-user settings: [`SettingsStore`].

use super::*;

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
