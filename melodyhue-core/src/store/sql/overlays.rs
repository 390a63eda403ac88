//! Overlays: [`OverlayStore`].

use super::*;

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
