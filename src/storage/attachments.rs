//! Files rows refer to, kept content-addressed under the tenant's prefix in the object store:
//! `attachments/<sha256>` holds the bytes, `attachments/<sha256>.json` what was said of them
//! (type, size, file name, when). The same bytes uploaded twice are one object; both writes
//! are create-only, so two uploads racing keep one copy and neither fails. The id is the
//! SHA-256 in hex, so a name from a request cannot address anything else.

use std::collections::BTreeMap;
use std::ops::Range;

use arrow::array::AsArray;
use arrow::record_batch::RecordBatch;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{StorageError, TenantStore};
use crate::config::DeclaredType;

/// Attachment lookups a write makes at once.
const LOOKUPS_AT_ONCE: usize = 16;

/// What is kept of an attachment besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentInfo {
    /// SHA-256 of the bytes, hex.
    pub id: String,
    pub content_type: String,
    pub bytes: u64,
    pub filename: Option<String>,
    /// Epoch ms of the first upload.
    pub created_ms: i64,
}

/// Whether `id` can name an attachment (64 lowercase hex digits).
pub fn is_attachment_id(id: &str) -> bool {
    id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The id the bytes are kept under: their SHA-256, hex.
pub fn attachment_id(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(super) fn body_path(id: &str) -> Path {
    Path::from(format!("attachments/{id}"))
}

pub(super) fn thumbnail_path(id: &str) -> Path {
    Path::from(format!("attachments/{id}.thumb.jpg"))
}

pub(super) fn info_path(id: &str) -> Path {
    Path::from(format!("attachments/{id}.json"))
}

/// When the same bytes were last uploaded again (epoch ms, text): the info keeps the first.
pub(super) fn seen_path(id: &str) -> Path {
    Path::from(format!("attachments/{id}.seen"))
}

/// Writes unless the object is there already (then the first copy stays).
async fn put_once(
    objects: &dyn ObjectStore,
    path: &Path,
    payload: PutPayload,
) -> Result<(), StorageError> {
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match objects.put_opts(path, payload, opts).await {
        Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl TenantStore {
    /// Every id a write puts in the table's `attachment` columns names an attachment of this
    /// tenant; checked before anything of the write is kept.
    pub(super) async fn check_attachments(
        &self,
        table: &str,
        batch: &RecordBatch,
    ) -> Result<(), StorageError> {
        let settings = self.settings();
        let Some(config) = settings.tables.get(table) else {
            return Ok(());
        };
        for column in config.attachment_columns() {
            // A column of another type is the schema check's to refuse.
            let Some(ids) = batch
                .column_by_name(column)
                .and_then(|a| a.as_string_opt::<i32>())
            else {
                continue;
            };
            // Each distinct id once (with the first row that names it), several at a time: an
            // object store far away answers each lookup in milliseconds.
            let mut first_row: BTreeMap<String, usize> = BTreeMap::new();
            for (row, id) in ids.iter().enumerate() {
                if let Some(id) = id {
                    first_row.entry(id.to_string()).or_insert(row + 1);
                }
            }
            let lookups = first_row.into_iter().map(|(id, row)| async move {
                Ok::<_, StorageError>((self.attachment(&id).await?.is_some(), id, row))
            });
            let mut found: Vec<_> = futures::stream::iter(lookups)
                .buffer_unordered(LOOKUPS_AT_ONCE)
                .try_collect()
                .await?;
            found.sort_by_key(|(_, _, row)| *row);
            if let Some((_, id, row)) = found.into_iter().find(|(exists, _, _)| !exists) {
                return Err(StorageError::UnknownAttachment {
                    table: table.to_string(),
                    column: column.to_string(),
                    row,
                    id: id.chars().take(80).collect(),
                });
            }
        }
        Ok(())
    }

    /// Keeps `body` (already checked by the caller) and says how it is known.
    pub async fn put_attachment(
        &self,
        body: Bytes,
        content_type: &str,
        filename: Option<String>,
        now_ms: i64,
    ) -> Result<AttachmentInfo, StorageError> {
        let id = attachment_id(&body);
        // Not while unreferenced attachments are being deleted: this one may be among them.
        let _gate = self.attachment_gate.read().await;
        self.usage()
            .add(crate::usage::Counter::AttachmentBytes, body.len() as u64);
        if let Some(known) = self.attachment(&id).await? {
            // Uploaded again: its grace starts anew (a row naming it is on its way).
            let seen = PutPayload::from(now_ms.to_string().into_bytes());
            self.objects.put(&seen_path(&id), seen).await?;
            return Ok(known);
        }
        let info = AttachmentInfo {
            id: id.clone(),
            content_type: content_type.to_string(),
            bytes: body.len() as u64,
            filename,
            created_ms: now_ms,
        };
        // The bytes first: an info file always finds its body.
        put_once(
            self.objects.as_ref(),
            &body_path(&id),
            PutPayload::from(body),
        )
        .await?;
        let text = serde_json::to_vec(&info).map_err(|e| StorageError::Internal {
            message: format!("attachment {id}: {e}"),
        })?;
        put_once(
            self.objects.as_ref(),
            &info_path(&id),
            PutPayload::from(text),
        )
        .await?;
        // A racing upload may have written its info first: the kept one is what counts.
        Ok(self.attachment(&id).await?.unwrap_or(info))
    }

    /// The attachment's info, or None when the tenant has none with that id.
    pub async fn attachment(&self, id: &str) -> Result<Option<AttachmentInfo>, StorageError> {
        if !is_attachment_id(id) {
            return Ok(None);
        }
        match self.objects.get(&info_path(id)).await {
            Ok(found) => {
                let text = found.bytes().await?;
                let info = serde_json::from_slice(&text).map_err(|e| StorageError::Internal {
                    message: format!("attachment {id}: {e}"),
                })?;
                Ok(Some(info))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// When the attachment's bytes were last uploaded again, if ever.
    pub(super) async fn last_upload_ms(&self, id: &str) -> Result<Option<i64>, StorageError> {
        match self.objects.get(&seen_path(id)).await {
            Ok(found) => Ok(String::from_utf8_lossy(&found.bytes().await?).parse().ok()),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether rows of `table` may name attachments.
    pub(super) fn names_attachments(&self, table: &str) -> bool {
        let settings = self.settings();
        // On every write: a look at the declaration, nothing collected.
        (settings.tables.get(table))
            .is_some_and(|t| t.fields.values().any(|f| *f == DeclaredType::Attachment))
    }

    /// The thumbnail made earlier for attachment `id`, if any.
    pub async fn cached_thumbnail(&self, id: &str) -> Result<Option<Bytes>, StorageError> {
        match self.objects.get(&thumbnail_path(id)).await {
            Ok(found) => Ok(Some(found.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Keeps a thumbnail of attachment `id` (made once; a racing copy is the same picture).
    pub async fn keep_thumbnail(&self, id: &str, jpeg: Bytes) -> Result<(), StorageError> {
        put_once(
            self.objects.as_ref(),
            &thumbnail_path(id),
            PutPayload::from(jpeg),
        )
        .await
    }

    /// The attachment's bytes, all or `range` (already checked against its size).
    pub async fn attachment_bytes(
        &self,
        id: &str,
        range: Option<Range<u64>>,
    ) -> Result<Bytes, StorageError> {
        let path = body_path(id);
        Ok(match range {
            Some(range) => self.objects.get_range(&path, range).await?,
            None => self.objects.get(&path).await?.bytes().await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sha256_hex_only() {
        assert!(is_attachment_id(&"a".repeat(64)));
        assert!(!is_attachment_id(&"A".repeat(64)));
        assert!(!is_attachment_id("../../catalog/00000001.json"));
        assert!(!is_attachment_id(&format!("{}.json", "a".repeat(59))));
    }
}
