//! Thumbnails of a tenant's attachments, for table cells, galleries and event notices: kept
//! in the object store once made; made off the async workers within [`THUMBNAIL_TIME`]
//! (decoding has its own size limits, see `render::thumbnail`).

use bytes::Bytes;

use super::PanelError;
use crate::storage::{AttachmentInfo, TenantStore};

/// Longest a thumbnail may take to make.
pub const THUMBNAIL_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// The JPEG thumbnail of a picture attachment; None for other types (their icon stands in).
pub async fn thumbnail(
    store: &TenantStore,
    info: &AttachmentInfo,
) -> Result<Option<Bytes>, PanelError> {
    if !info.content_type.starts_with("image/") {
        return Ok(None);
    }
    if let Some(kept) = store.cached_thumbnail(&info.id).await? {
        return Ok(Some(kept));
    }
    let failed = |message: String| PanelError::Thumbnail {
        id: info.id.clone(),
        message,
    };
    let bytes = store.attachment_bytes(&info.id, None).await?;
    let content_type = info.content_type.clone();
    let made = tokio::task::spawn_blocking(move || crate::render::thumbnail(&bytes, &content_type));
    let made = tokio::time::timeout(THUMBNAIL_TIME, made)
        .await
        .map_err(|_| failed("took too long".into()))?
        .map_err(|e| failed(format!("task failed: {e}")))?;
    let Some(made) = made else {
        return Ok(None);
    };
    let made = Bytes::from(made.map_err(|source| PanelError::Picture {
        id: info.id.clone(),
        source,
    })?);
    store.keep_thumbnail(&info.id, made.clone()).await?;
    Ok(Some(made))
}
