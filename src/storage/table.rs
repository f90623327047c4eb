//! One table of one tenant in memory: its schema, the Arrow buffer of rows not yet in Parquet
//! (`active`, plus `persisting` while a flush is under way) and the live Parquet files. Readers
//! take a snapshot of buffer and files under one lock, so a flush that moves rows from the
//! buffer into a file can never make a reader see them twice or not at all.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parking_lot::Mutex;

use super::StorageError;
use super::buffers::BufferBudget;
use super::catalog::{Manifest, ParquetFile};
use super::last::LastRows;
use super::schema::{TableSchema, align_batch};
use super::wal::ActiveSegment;
use super::wal_objects::ObjectWal;

#[derive(Debug)]
pub struct Table {
    pub name: String,
    pub(super) wal_dir: PathBuf,
    pub(super) inner: Mutex<TableInner>,
    /// The WAL segment being appended to; only the WAL writer thread touches it.
    pub(super) segment: Mutex<Option<ActiveSegment>>,
    /// This process's stream when the WAL is in the object store.
    pub(super) object_wal: Option<ObjectWal>,
    /// One flush at a time per table.
    pub(super) persist_lock: tokio::sync::Mutex<()>,
    /// Set while a size-triggered flush is queued, so writes do not queue one each.
    pub(super) persist_requested: AtomicBool,
    /// The process-wide ingest budget this table's buffer counts against.
    pub(super) budget: Arc<BufferBudget>,
    /// One reader at a time reads the files into the last-value cache after a start.
    pub(super) last_load: tokio::sync::Mutex<()>,
    /// Files read into the last-value cache since start (the snapshot spares most).
    pub(super) last_files_read: std::sync::atomic::AtomicU64,
}

impl Drop for Table {
    fn drop(&mut self) {
        let inner = self.inner.lock();
        self.budget
            .release(inner.active_bytes + inner.persisting_bytes + inner.remote_bytes);
    }
}

impl Table {
    /// Gives the flushed rows' bytes back to the budget; under the table's lock, with the
    /// buffer cleared.
    pub(super) fn release_persisted(&self, inner: &mut TableInner) {
        inner.persisting.clear();
        // The cache's rows are copied out, so it does not keep the flushed batches alive.
        if let Err(e) = inner.last.compact() {
            inner.forget_last(&self.name, &e);
        }
        self.budget
            .release(std::mem::take(&mut inner.persisting_bytes));
    }
}

#[derive(Debug)]
pub(super) struct TableInner {
    pub schema: TableSchema,
    pub arrow_schema: SchemaRef,
    pub active: Vec<RecordBatch>,
    pub active_rows: usize,
    pub active_bytes: usize,
    pub oldest_active: Option<Instant>,
    pub persisting: Vec<RecordBatch>,
    /// Bytes of `persisting`, given back to the budget when the flush commits.
    pub persisting_bytes: usize,
    pub files: Vec<ParquetFile>,
    /// Each rollup's files (same catalog version as `files`).
    pub rollups: std::collections::BTreeMap<String, Vec<ParquetFile>>,
    /// Catalog version `files` came from; an older commit result never overwrites a newer one.
    pub files_version: u64,
    /// The next WAL segment number to open.
    pub next_segment: u64,
    /// How far this process's WAL is persisted, as it last committed (or found) it: a flush
    /// commits only if the catalog still says so (else another node adopted the rows).
    pub wal_mark: u64,
    /// Rows other nodes acknowledged that are not in `files` yet, by WAL stream and object
    /// number (see `wal_objects`); dropped when a catalog version marks them persisted.
    pub remote: std::collections::BTreeMap<(String, u64), Vec<RecordBatch>>,
    pub remote_bytes: usize,
    /// The newest row of every series.
    pub last: LastRows,
}

impl TableInner {
    /// A cache that failed to take rows starts over: the next reader rebuilds it from the
    /// buffer and the files.
    pub(super) fn forget_last(&mut self, table: &str, error: &StorageError) {
        tracing::warn!(table, %error, "last-value cache rebuilt on next read");
        self.last = LastRows::default();
    }

    /// Takes the files of `manifest` unless a newer version is here, and drops the other
    /// nodes' rows it marks persisted; returns the bytes dropped.
    pub(super) fn set_files(&mut self, manifest: &Manifest, table: &str) -> usize {
        if manifest.version < self.files_version {
            return 0;
        }
        self.files_version = manifest.version;
        let entry = manifest.tables.get(table);
        let (files, rollups) = entry
            .map(|t| (t.files.clone(), t.rollups.clone()))
            .unwrap_or_default();
        self.files = files;
        self.rollups = rollups;
        let Some(entry) = entry else {
            return 0;
        };
        let mut dropped = 0;
        self.remote.retain(|(stream, seq), batches| {
            let persisted = *seq <= entry.persisted_through(stream);
            if persisted {
                dropped += batches
                    .iter()
                    .map(|b| b.get_array_memory_size())
                    .sum::<usize>();
            }
            !persisted
        });
        self.remote_bytes -= dropped;
        dropped
    }

    fn buffered(&self) -> impl Iterator<Item = &RecordBatch> {
        self.persisting
            .iter()
            .chain(self.active.iter())
            .chain(self.remote.values().flatten())
    }
}

/// What a query reads: buffer batches aligned to `schema`, plus the live Parquet files.
#[derive(Debug, Clone)]
pub struct TableSnapshot {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub files: Vec<ParquetFile>,
    /// Each rollup's files, by rollup name; a rollup holds the rows of the files naming it.
    pub rollups: std::collections::BTreeMap<String, Vec<ParquetFile>>,
}

/// Sizes reported by the tables API.
#[derive(Debug, Clone)]
pub struct TableStats {
    pub name: String,
    pub schema: TableSchema,
    pub buffered_rows: u64,
    pub persisted_rows: u64,
    pub files: usize,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
}

impl Table {
    pub(super) fn new(
        name: &str,
        wal_dir: PathBuf,
        schema: TableSchema,
        files: Vec<ParquetFile>,
        next_segment: u64,
        budget: Arc<BufferBudget>,
        object_wal: Option<ObjectWal>,
    ) -> Self {
        let arrow_schema = schema.arrow_schema();
        Self {
            name: name.to_string(),
            wal_dir,
            inner: Mutex::new(TableInner {
                schema,
                arrow_schema,
                active: vec![],
                active_rows: 0,
                active_bytes: 0,
                oldest_active: None,
                persisting: vec![],
                persisting_bytes: 0,
                files,
                rollups: Default::default(),
                files_version: 0,
                next_segment,
                wal_mark: next_segment.saturating_sub(1),
                remote: Default::default(),
                remote_bytes: 0,
                last: LastRows::default(),
            }),
            segment: Mutex::new(None),
            object_wal,
            persist_lock: tokio::sync::Mutex::new(()),
            persist_requested: AtomicBool::new(false),
            budget,
            last_load: tokio::sync::Mutex::new(()),
            last_files_read: Default::default(),
        }
    }

    /// The table's current schema as Arrow.
    pub fn arrow_schema(&self) -> SchemaRef {
        self.inner.lock().arrow_schema.clone()
    }

    pub fn schema(&self) -> TableSchema {
        self.inner.lock().schema.clone()
    }

    /// Validates the batch's columns against the table and grows the schema; on a type
    /// conflict nothing changes and the error names the column.
    pub(super) fn accept_schema(&self, batch: &RecordBatch) -> Result<(), StorageError> {
        self.grow_schema(&batch.schema())
    }

    /// Adds the declared columns this table lacks; a declared type that differs from the
    /// stored one is a conflict and changes nothing.
    pub(super) fn declare(&self, declared: &TableSchema) -> Result<(), StorageError> {
        self.grow_schema(&declared.arrow_schema())
    }

    fn grow_schema(&self, incoming: &arrow::datatypes::Schema) -> Result<(), StorageError> {
        let mut inner = self.inner.lock();
        let merged = inner.schema.merge(&self.name, incoming)?;
        if merged != inner.schema {
            inner.arrow_schema = merged.arrow_schema();
            inner.schema = merged;
        }
        Ok(())
    }

    /// The next WAL segment (or object) number of this table.
    pub(super) fn take_segment_number(&self) -> u64 {
        let mut inner = self.inner.lock();
        inner.next_segment += 1;
        inner.next_segment - 1
    }

    /// Makes an acknowledged batch visible to queries.
    pub(super) fn push_active(&self, batch: RecordBatch) {
        let mut inner = self.inner.lock();
        inner.active_rows += batch.num_rows();
        let bytes = batch.get_array_memory_size();
        inner.active_bytes += bytes;
        self.budget.take(bytes);
        inner.oldest_active.get_or_insert_with(Instant::now);
        let inner = &mut *inner;
        if let Err(e) = inner.last.offer(&inner.schema, &inner.arrow_schema, &batch) {
            inner.forget_last(&self.name, &e);
        }
        inner.active.push(batch);
    }

    /// Takes the table's file list from a committed manifest, unless a newer one is already
    /// here (two commits may finish in either order).
    pub(super) fn set_files(&self, manifest: &Manifest) {
        let mut inner = self.inner.lock();
        let dropped = inner.set_files(manifest, &self.name);
        self.budget.release(dropped);
    }

    /// Whether another node's object `seq` of `stream` is held already.
    pub(super) fn holds_remote(&self, stream: &str, seq: u64) -> bool {
        self.inner
            .lock()
            .remote
            .contains_key(&(stream.to_string(), seq))
    }

    /// Makes rows another node acknowledged visible here until they are in Parquet.
    pub(super) fn push_remote(&self, stream: &str, seq: u64, batches: Vec<RecordBatch>) {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let key = (stream.to_string(), seq);
        if inner.remote.contains_key(&key) {
            return;
        }
        let bytes: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
        self.budget.take(bytes);
        inner.remote_bytes += bytes;
        for batch in &batches {
            if let Err(e) = inner.last.offer(&inner.schema, &inner.arrow_schema, batch) {
                inner.forget_last(&self.name, &e);
            }
        }
        inner.remote.insert(key, batches);
    }

    /// Buffered rows and bytes, and how long the oldest has waited.
    pub(super) fn buffer_size(&self) -> (usize, usize, Option<std::time::Duration>) {
        let inner = self.inner.lock();
        (
            inner.active_rows,
            inner.active_bytes,
            inner.oldest_active.map(|t| t.elapsed()),
        )
    }

    /// Files read into the last-value cache since start.
    pub fn last_rows_files_read(&self) -> u64 {
        self.last_files_read
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Result<TableSnapshot, StorageError> {
        let inner = self.inner.lock();
        let schema = inner.arrow_schema.clone();
        let batches = inner
            .buffered()
            .map(|b| align_batch(b, &schema))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TableSnapshot {
            schema,
            batches,
            files: inner.files.clone(),
            rollups: inner.rollups.clone(),
        })
    }

    pub fn stats(&self) -> TableStats {
        let inner = self.inner.lock();
        let buffered_rows = inner.buffered().map(|b| b.num_rows() as u64).sum();
        let mut min_time = inner.files.iter().map(|f| f.min_time).min();
        let mut max_time = inner.files.iter().map(|f| f.max_time).max();
        for batch in inner.buffered() {
            if let Some((lo, hi)) = time_bounds(batch) {
                min_time = Some(min_time.map_or(lo, |m| m.min(lo)));
                max_time = Some(max_time.map_or(hi, |m| m.max(hi)));
            }
        }
        TableStats {
            name: self.name.clone(),
            schema: inner.schema.clone(),
            buffered_rows,
            persisted_rows: inner.files.iter().map(|f| f.rows).sum(),
            files: inner.files.len(),
            min_time,
            max_time,
        }
    }
}

/// Min and max of the batch's `time` column.
pub(super) fn time_bounds(batch: &RecordBatch) -> Option<(i64, i64)> {
    use arrow::array::{Array, TimestampNanosecondArray};
    let time = batch
        .column_by_name(super::schema::TIME_COLUMN)?
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()?;
    let lo = arrow::compute::min(time)?;
    let hi = arrow::compute::max(time)?;
    (time.null_count() < time.len()).then_some((lo, hi))
}
