//! Deleting attachments nothing refers to any more. An attachment is kept while a row within
//! its table's retention names it in an `attachment` column, and for `attachment_grace` after
//! it was last uploaded (the row that will name it may still be on its way; uploading the same
//! bytes again starts the grace anew). A tenant whose tables declare no `attachment` column
//! keeps every file: no declaration means no way to tell what is unused.
//!
//! The scan (buffers and every file's attachment columns) runs without blocking writes; the
//! deletion then holds the attachment gate against writes naming attachments and uploads, and
//! looks again at what arrived meanwhile (the buffers and files the scan did not see), so a
//! row acknowledged while the scan ran never points at a deleted file.

use std::collections::{BTreeSet, HashSet};

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimeUnit;
use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::attachments::{body_path, info_path, is_attachment_id, seen_path, thumbnail_path};
use super::{StorageError, TenantStore};
use crate::schema::TIME_COLUMN;

/// What the scan saw: ids named, and the files it read (per table).
#[derive(Default)]
struct References {
    ids: HashSet<String>,
    files: BTreeSet<String>,
}

impl TenantStore {
    /// Deletes the attachments no row refers to and whose grace has passed, when the last
    /// collection is `attachment_collect_interval` old; returns how many went.
    pub async fn collect_attachments(&self, now_ms: i64) -> Result<usize, StorageError> {
        let every = self.config.attachment_collect_interval.0.as_millis() as i64;
        {
            let mut last = self.last_attachment_collection.lock();
            if last.is_some_and(|at| now_ms - at < every) {
                return Ok(0);
            }
            *last = Some(now_ms);
        }
        let columns = self.attachment_columns();
        if columns.is_empty() {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        let mut refs = References::default();
        self.scan_references(&columns, now_ms, &mut refs, false)
            .await?;
        let stale = self.stale_attachments(&refs, now_ms).await?;
        if stale.is_empty() {
            return Ok(0);
        }
        let _gate = self.attachment_gate.write().await;
        self.scan_references(&columns, now_ms, &mut refs, true)
            .await?;
        let mut deleted = 0;
        for id in stale {
            // Named meanwhile, or uploaded again: kept.
            if refs.ids.contains(&id) || !self.past_grace(&id, now_ms).await? {
                continue;
            }
            // The info first: from then on the attachment is unknown to writes and readers.
            for path in [
                info_path(&id),
                body_path(&id),
                thumbnail_path(&id),
                seen_path(&id),
            ] {
                match self.objects.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            deleted += 1;
        }
        if deleted > 0 {
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let (files, named) = (refs.files.len(), refs.ids.len());
            tracing::info!(tenant = %self.name, deleted, named, files, elapsed_ms, "unreferenced attachments deleted");
        }
        Ok(deleted)
    }

    /// `(table, its attachment columns)` as tenant.yaml declares them.
    fn attachment_columns(&self) -> Vec<(String, Vec<String>)> {
        let settings = self.settings();
        (settings.tables.iter())
            .map(|(name, t)| {
                let columns = t.attachment_columns().into_iter().map(String::from);
                (name.clone(), columns.collect::<Vec<_>>())
            })
            .filter(|(_, columns)| !columns.is_empty())
            .collect()
    }

    /// Adds the ids named by rows within retention; `again`: only files not read before.
    async fn scan_references(
        &self,
        columns: &[(String, Vec<String>)],
        now_ms: i64,
        refs: &mut References,
        again: bool,
    ) -> Result<(), StorageError> {
        for (name, columns) in columns {
            let Some(table) = self.table(name) else {
                continue;
            };
            let cutoff_ns = self.retention(name).map_or(i64::MIN, |r| {
                (now_ms - r.as_millis() as i64).saturating_mul(1_000_000)
            });
            let snapshot = table.snapshot()?;
            for batch in &snapshot.batches {
                named_in(batch, columns, cutoff_ns, &mut refs.ids);
            }
            for file in &snapshot.files {
                if file.max_time < cutoff_ns || (again && refs.files.contains(&file.path)) {
                    continue;
                }
                refs.files.insert(file.path.clone());
                let bytes = self.objects.get(&Path::from(file.path.as_str())).await?;
                let bytes = bytes.bytes().await?;
                let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
                let wanted: Vec<&str> = columns
                    .iter()
                    .map(String::as_str)
                    .chain([TIME_COLUMN])
                    .collect();
                let mask = ProjectionMask::columns(builder.parquet_schema(), wanted);
                for batch in builder.with_projection(mask).build()? {
                    named_in(&batch?, columns, cutoff_ns, &mut refs.ids);
                }
            }
        }
        Ok(())
    }

    /// Attachments of the tenant neither named nor within their grace.
    async fn stale_attachments(
        &self,
        refs: &References,
        now_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        let listed: Vec<_> = self
            .objects
            .list(Some(&Path::from("attachments")))
            .try_collect()
            .await?;
        let mut stale = vec![];
        for meta in listed {
            let Some(id) = meta.location.filename() else {
                continue;
            };
            if is_attachment_id(id) && !refs.ids.contains(id) && self.past_grace(id, now_ms).await?
            {
                stale.push(id.to_string());
            }
        }
        Ok(stale)
    }

    /// Whether the attachment was last uploaded longer than the grace ago.
    async fn past_grace(&self, id: &str, now_ms: i64) -> Result<bool, StorageError> {
        let grace = self.config.attachment_grace.0.as_millis() as i64;
        let Some(info) = self.attachment(id).await? else {
            // A body without its info: an upload that stopped half way, or one in progress.
            return Ok(false);
        };
        let last = self
            .last_upload_ms(id)
            .await?
            .unwrap_or(0)
            .max(info.created_ms);
        Ok(now_ms - last >= grace)
    }
}

/// Adds the ids of `columns` in rows at or after `cutoff_ns`.
fn named_in(batch: &RecordBatch, columns: &[String], cutoff_ns: i64, out: &mut HashSet<String>) {
    let times = batch.column_by_name(TIME_COLUMN).and_then(|t| {
        let ns = arrow::compute::cast(
            t,
            &arrow::datatypes::DataType::Timestamp(TimeUnit::Nanosecond, None),
        )
        .ok()?;
        Some(ns)
    });
    let times = times.as_ref().and_then(|t| {
        t.as_primitive_opt::<arrow::datatypes::TimestampNanosecondType>()
            .cloned()
    });
    for column in columns {
        let Some(ids) = batch
            .column_by_name(column)
            .and_then(|a| a.as_string_opt::<i32>())
        else {
            continue;
        };
        for row in 0..ids.len() {
            let in_retention = times
                .as_ref()
                .is_none_or(|t| t.is_null(row) || t.value(row) >= cutoff_ns);
            if in_retention && ids.is_valid(row) {
                out.insert(ids.value(row).to_string());
            }
        }
    }
}
