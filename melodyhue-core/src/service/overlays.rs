//! Overlays: each user's named overlays, and the public view of one.

use super::{Error, Result, Stale};
use crate::App;
use crate::cluster::changes::Change;
use crate::model::{Overlay, OverlayName, OverlayPatch, OverlayTemplate, User, new_id};

const NOT_FOUND: &str = "Overlay not found";

/// Overlays: their owners' CRUD and the public read.
///
/// A view of an [`App`], from [`App::overlays`].
#[derive(Debug, Clone, Copy)]
pub struct Overlays<'a> {
    pub(crate) app: &'a App,
}

impl<'a> Overlays<'a> {
    /// The caller's overlays, oldest first.
    pub async fn overlays_of(self, owner: &User) -> Result<Vec<Overlay>> {
        Ok(self.app.inner().store.overlays_of(&owner.id).await?)
    }

    /// Makes an overlay for the caller.
    pub async fn create_overlay(
        self,
        owner: &User,
        name: OverlayName,
        template: OverlayTemplate,
    ) -> Result<Overlay> {
        self.insert_overlay(owner, name.into_string(), template.into_string())
            .await
    }

    /// Stores a new overlay of `owner`: a checked name and template, or a copy's.
    async fn insert_overlay(self, owner: &User, name: String, template: String) -> Result<Overlay> {
        let now = self.app.now();
        let overlay = Overlay {
            id: new_id(),
            owner_id: owner.id.clone(),
            name,
            template,
            created_at: now,
            updated_at: now,
        };
        self.app.inner().store.insert_overlay(&overlay).await?;
        Ok(overlay)
    }

    /// [`Overlays::public_overlay`] for viewers: while the database is unavailable, the last copy
    /// read instead, marked stale, for up to [`STALE_IF_ERROR`](super::STALE_IF_ERROR).
    pub async fn public_overlay_or_stale(self, id: &str) -> Result<(Overlay, Option<Stale>)> {
        match self.public_overlay(id).await {
            Ok(overlay) => Ok((overlay, None)),
            Err(Error::Unavailable(err)) => match self.app.inner().hot_reads.stale_overlay(id) {
                Some((overlay, stale)) => Ok((overlay, Some(stale))),
                None => Err(Error::Unavailable(err)),
            },
            Err(err) => Err(err),
        }
    }

    /// Any overlay, for its public page, which OBS polls: from a copy at most one polling
    /// interval old (10 to 15 minutes on a subscribed cluster node; see
    /// [`HotReads`](super::HotReads)), dropped when the overlay changes.
    pub async fn public_overlay(self, id: &str) -> Result<Overlay> {
        let inner = self.app.inner();
        if let Some(overlay) = inner.hot_reads.overlay(id) {
            return Ok(overlay);
        }
        let read = inner.hot_reads.read_started();
        let overlay = inner
            .store
            .overlay_by_id(id)
            .await?
            .ok_or(Error::NotFound(NOT_FOUND))?;
        inner.hot_reads.keep_overlay(&overlay, read);
        Ok(overlay)
    }

    /// One of the caller's overlays; someone else's is "not found" too.
    pub async fn own_overlay(self, owner: &User, id: &str) -> Result<Overlay> {
        match self.app.inner().store.overlay_by_id(id).await? {
            Some(overlay) if overlay.owner_id == owner.id => Ok(overlay),
            _ => Err(Error::NotFound(NOT_FOUND)),
        }
    }

    /// Changes one of the caller's overlays.
    pub async fn update_own_overlay(
        self,
        owner: &User,
        id: &str,
        patch: &OverlayPatch,
    ) -> Result<Overlay> {
        self.own_overlay(owner, id).await?;
        self.update_overlay(id, patch).await
    }

    /// Changes any overlay (owners after their check, moderators).
    pub(crate) async fn update_overlay(self, id: &str, patch: &OverlayPatch) -> Result<Overlay> {
        let updated = self
            .app
            .inner()
            .store
            .update_overlay(id, patch, self.app.now())
            .await;
        self.app.announce(Change::Overlay {
            overlay_id: id.to_owned(),
        });
        updated?.ok_or(Error::NotFound(NOT_FOUND))
    }

    /// Deletes one of the caller's overlays.
    pub async fn delete_own_overlay(self, owner: &User, id: &str) -> Result<()> {
        self.own_overlay(owner, id).await?;
        self.delete_overlay(id).await
    }

    /// Deletes any overlay.
    pub(crate) async fn delete_overlay(self, id: &str) -> Result<()> {
        let deleted = self.app.inner().store.delete_overlay(id).await;
        self.app.announce(Change::Overlay {
            overlay_id: id.to_owned(),
        });
        if deleted? {
            Ok(())
        } else {
            Err(Error::NotFound(NOT_FOUND))
        }
    }

    /// Copies one of the caller's overlays as `"<name> (copy)"`, with its template as stored.
    pub async fn duplicate_own_overlay(self, owner: &User, id: &str) -> Result<Overlay> {
        let original = self.own_overlay(owner, id).await?;
        self.insert_overlay(owner, copy_name(&original.name), original.template)
            .await
    }
}

/// `"<name> (copy)"`, shortening the name so the result still fits.
fn copy_name(name: &str) -> String {
    const SUFFIX: &str = " (copy)";
    let keep = OverlayName::MAX_CHARS - SUFFIX.chars().count();
    let base: String = name.chars().take(keep).collect();
    format!("{base}{SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_fit_the_name_limit() {
        assert_eq!(copy_name("Main"), "Main (copy)");
        let long = "x".repeat(OverlayName::MAX_CHARS);
        assert_eq!(copy_name(&long).chars().count(), OverlayName::MAX_CHARS);
    }
}
