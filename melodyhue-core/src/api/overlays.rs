//! `/overlays`: the caller's overlays.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::bodies::OverlayBody;
use super::response::{ok, rfc3339};
use super::{Ctx, Reply, path_id};
use crate::model::Overlay;

const NOT_FOUND: &str = "Overlay not found";

/// An overlay as its owner and the public see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OverlayView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Template.
    pub template: String,
    /// Creation.
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl From<Overlay> for OverlayView {
    fn from(o: Overlay) -> Self {
        OverlayView {
            id: o.id,
            name: o.name,
            template: o.template,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// Reads `{name?, template?}` of a create or update.
pub(super) fn overlay_body(cx: &Ctx<'_>) -> Result<OverlayBody, super::ApiError> {
    OverlayBody::read(cx.input(false)?)
}

pub(super) async fn list(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    let overlays = cx.app.overlays().overlays_of(&principal.user).await?;
    let views: Vec<OverlayView> = overlays.into_iter().map(OverlayView::from).collect();
    Ok(ok(&views))
}

pub(super) async fn create(cx: &Ctx<'_>) -> Reply {
    let principal = cx.principal().await?;
    // An empty body is fine: both fields have defaults.
    let body = if cx.body.is_empty() {
        OverlayBody::default()
    } else {
        overlay_body(cx)?
    };
    let overlay = cx
        .app
        .overlays()
        .create_overlay(
            &principal.user,
            body.name.unwrap_or_default(),
            body.template.unwrap_or_default(),
        )
        .await?;
    Ok(ok(&OverlayView::from(overlay)))
}

pub(super) async fn get(cx: &Ctx<'_>, id: &str) -> Reply {
    let principal = cx.principal().await?;
    let overlay = cx
        .app
        .overlays()
        .own_overlay(&principal.user, path_id(id, NOT_FOUND)?)
        .await?;
    Ok(ok(&OverlayView::from(overlay)))
}

pub(super) async fn update(cx: &Ctx<'_>, id: &str) -> Reply {
    let principal = cx.principal().await?;
    let patch = overlay_body(cx)?.into();
    let overlay = cx
        .app
        .overlays()
        .update_own_overlay(&principal.user, path_id(id, NOT_FOUND)?, &patch)
        .await?;
    Ok(ok(&OverlayView::from(overlay)))
}

pub(super) async fn delete(cx: &Ctx<'_>, id: &str) -> Reply {
    let principal = cx.principal().await?;
    cx.app
        .overlays()
        .delete_own_overlay(&principal.user, path_id(id, NOT_FOUND)?)
        .await?;
    Ok(ok(&serde_json::json!({"status": "ok"})))
}

pub(super) async fn duplicate(cx: &Ctx<'_>, id: &str) -> Reply {
    let principal = cx.principal().await?;
    let overlay = cx
        .app
        .overlays()
        .duplicate_own_overlay(&principal.user, path_id(id, NOT_FOUND)?)
        .await?;
    Ok(ok(&OverlayView::from(overlay)))
}
