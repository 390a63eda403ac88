//! [`OverlayStore`] for [`MemoryStore`]: users' overlays.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use melodyhue_core::model::{Overlay, OverlayPatch, OwnedOverlay};
use melodyhue_core::store::{ListQuery, OverlayStore, Page, StoreError, StoreResult};

use super::{MemoryStore, newest_first_page};

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
