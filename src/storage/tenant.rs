//! One tenant's tables: opening them (catalog + WAL replay), the write path and flushes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::physical_plan::SendableRecordBatchStream;
use object_store::ObjectStore;
use parking_lot::RwLock;

use super::buffers::BufferBudget;
use super::buffers::WorkingMemory;
use super::catalog::{Catalog, CatalogChange, ParquetFile};
use super::merge;
use super::paths::ParquetFilePath;
use super::persist::sorted_runs_by_day;
use super::schema::{TIME_COLUMN, TableSchema};
use super::table::Table;
use super::wal::{self, encode_record};
use super::wal_objects::{self, ObjectWal, WalLease};
use super::writer::WalWriter;
use super::{OpenMode, StorageError, validate_table_name};
use crate::config::{StorageConfig, TenantConfig};
use crate::usage::TenantUsage;

#[derive(Debug)]
pub struct TenantStore {
    pub name: String,
    /// Table settings from tenant.yaml, as last pushed by the live configuration.
    declared: RwLock<Arc<TenantConfig>>,
    pub(super) config: StorageConfig,
    /// Scoped to `{tenant}/`: this tenant cannot address another's objects.
    pub(super) objects: Arc<dyn ObjectStore>,
    pub(super) catalog: Catalog,
    pub(super) wal_dir: PathBuf,
    writer: Option<WalWriter>,
    /// This process's WAL stream in the object store, and the lease to write it.
    pub(super) object_wal: Option<(ObjectWal, Arc<WalLease>)>,
    tables: RwLock<BTreeMap<String, Arc<Table>>>,
    budget: Arc<BufferBudget>,
    /// The merge's working memory, counted against the buffers' share.
    pub(super) working_memory: Arc<dyn MemoryPool>,
    /// Held shared by uploads and by writes naming attachments, exclusively while
    /// unreferenced attachments are deleted (see `attachment_gc`).
    pub(super) attachment_gate: tokio::sync::RwLock<()>,
    /// When unreferenced attachments were last looked for (epoch ms).
    pub(super) last_attachment_collection: parking_lot::Mutex<Option<i64>>,
    /// Whether tenant.yaml's settings reached this store yet: until they have, maintenance
    /// leaves the tenant alone (it would take the server's retention for the table's own, and
    /// declared rollups for dropped ones).
    pub(super) settings_applied: std::sync::atomic::AtomicBool,
    /// What the tenant used on this node, and its quota windows.
    usage: Arc<TenantUsage>,
}

/// What one flush did.
#[derive(Debug, Default, Clone, Copy)]
pub struct PersistStats {
    pub rows: u64,
    pub files: usize,
    pub bytes: u64,
}

/// How a tenant's writes reach their WAL: the process's writer (none read-only), whether the
/// local WAL may be cut and cleaned, and the lease of the process's stream when the WAL is in
/// the object store.
pub(super) struct WalAccess {
    pub writer: Option<WalWriter>,
    pub mode: OpenMode,
    pub object_lease: Option<Arc<WalLease>>,
}

impl TenantStore {
    pub(super) async fn open(
        name: &str,
        config: StorageConfig,
        objects: Arc<dyn ObjectStore>,
        wal_dir: PathBuf,
        access: WalAccess,
        budget: Arc<BufferBudget>,
        usage: Arc<TenantUsage>,
    ) -> Result<Self, StorageError> {
        let WalAccess {
            writer,
            mode,
            object_lease,
        } = access;
        let object_wal = object_lease.map(|lease| {
            let wal = ObjectWal {
                objects: objects.clone(),
                stream: config.wal_id.clone(),
            };
            (wal, lease)
        });
        let catalog = Catalog::load(objects.clone()).await?;
        let manifest = catalog.current().await;
        let mut tables = BTreeMap::new();
        let mut names: Vec<String> = manifest.tables.keys().cloned().collect();
        for entry in std::fs::read_dir(&wal_dir).into_iter().flatten().flatten() {
            if let Some(n) = entry.file_name().to_str()
                && validate_table_name(n).is_ok()
                && !names.iter().any(|x| x == n)
            {
                names.push(n.to_string());
            }
        }
        for table_name in names {
            let persisted = manifest
                .tables
                .get(&table_name)
                .cloned()
                .unwrap_or_default();
            let schema = persisted.schema.clone();
            let table_wal = wal_dir.join(&table_name);
            let persisted_through = persisted.persisted_through(&config.wal_id);
            let segments = wal::list_segments(&table_wal)?;
            let next = segments
                .last()
                .map(|(s, _)| *s)
                .unwrap_or(0)
                .max(persisted_through)
                + 1;
            let table = Arc::new(Table::new(
                &table_name,
                table_wal,
                schema,
                persisted.files.clone(),
                next,
                budget.clone(),
                object_wal.as_ref().map(|(wal, _)| wal.clone()),
            ));
            {
                let mut inner = table.inner.lock();
                inner.rollups = persisted.rollups.clone();
                inner.wal_mark = persisted_through;
                inner.files_version = manifest.version;
            }
            for (seq, path) in segments {
                if seq <= persisted_through {
                    // Already in Parquet; a crash came between catalog commit and WAL cleanup.
                    if mode == OpenMode::ReadWrite {
                        let _ = std::fs::remove_file(&path);
                    }
                    continue;
                }
                let replay = wal::read_segment(&path)?;
                match (&replay.torn_at, mode) {
                    (Some((offset, reason)), OpenMode::ReadWrite) => {
                        tracing::warn!(tenant = name, table = %table_name, segment = %path.display(), offset, reason = %reason, "cutting torn WAL tail");
                        wal::truncate_segment(&path, *offset)?;
                    }
                    // A reader beside a live server sees records still being appended.
                    (Some((offset, reason)), OpenMode::ReadOnly) => {
                        tracing::debug!(tenant = name, table = %table_name, segment = %path.display(), offset, reason = %reason, "ignoring incomplete WAL tail");
                    }
                    (None, _) => {}
                }
                for batch in replay.batches {
                    table.accept_schema(&batch)?;
                    table.push_active(batch);
                }
            }
            tables.insert(table_name, table);
        }
        let replayed: usize = tables.values().map(|t| t.buffer_size().0).sum();
        tracing::info!(
            tenant = name,
            tables = tables.len(),
            replayed_rows = replayed,
            catalog_version = manifest.version,
            "tenant opened"
        );
        Ok(Self {
            name: name.to_string(),
            declared: RwLock::new(Arc::default()),
            config,
            objects,
            catalog,
            wal_dir,
            writer,
            object_wal,
            tables: RwLock::new(tables),
            working_memory: Arc::new(WorkingMemory::new(budget.clone())),
            attachment_gate: tokio::sync::RwLock::new(()),
            last_attachment_collection: parking_lot::Mutex::new(None),
            settings_applied: std::sync::atomic::AtomicBool::new(false),
            budget,
            usage,
        })
    }

    /// The tenant's usage counters and quota windows on this node.
    pub fn usage(&self) -> &Arc<TenantUsage> {
        &self.usage
    }

    /// The tenant's quotas from tenant.yaml.
    pub fn quotas(&self) -> crate::usage::Quotas {
        self.declared.read().quotas
    }

    pub(super) fn buffer_budget(&self) -> &BufferBudget {
        &self.budget
    }

    pub fn table(&self, name: &str) -> Option<Arc<Table>> {
        self.tables.read().get(name).cloned()
    }

    pub fn tables(&self) -> Vec<Arc<Table>> {
        self.tables.read().values().cloned().collect()
    }

    /// Takes the tenant's table settings from tenant.yaml (at start and on every reload):
    /// retention applies from the next maintenance run, declared tables exist (empty) before
    /// their first write, and declared columns join existing tables. A declaration that
    /// contradicts stored data is refused for that table (the stored type wins) and returned.
    pub fn apply_settings(&self, settings: TenantConfig) -> Vec<StorageError> {
        self.settings_applied.store(true, Ordering::Release);
        let mut refused = vec![];
        for (name, table) in &settings.tables {
            if let Err(e) = validate_table_name(name) {
                refused.push(e);
                continue;
            }
            let declared = TableSchema::declared(table);
            if let Err(e) = self
                .table_or_create(name)
                .and_then(|t| t.declare(&declared))
            {
                tracing::warn!(tenant = %self.name, table = %name, error = %e, "declared schema refused");
                refused.push(e);
            }
        }
        *self.declared.write() = Arc::new(settings);
        refused
    }

    /// The settings last pushed by [`apply_settings`](Self::apply_settings).
    pub fn settings(&self) -> Arc<TenantConfig> {
        self.declared.read().clone()
    }

    /// The schema a write to `table` will be checked against: the live one, else the one
    /// declared in tenant.yaml, else empty (`time` only).
    pub fn schema_for_write(&self, table: &str) -> TableSchema {
        if let Some(t) = self.table(table) {
            return t.schema();
        }
        self.declared
            .read()
            .tables
            .get(table)
            .map(TableSchema::declared)
            .unwrap_or_default()
    }

    pub(super) fn table_or_create(&self, name: &str) -> Result<Arc<Table>, StorageError> {
        validate_table_name(name)?;
        if let Some(t) = self.table(name) {
            return Ok(t);
        }
        let mut tables = self.tables.write();
        let table = tables.entry(name.to_string()).or_insert_with(|| {
            let schema = self
                .declared
                .read()
                .tables
                .get(name)
                .map(TableSchema::declared)
                .unwrap_or_default();
            let table = Table::new(
                name,
                self.wal_dir.join(name),
                schema,
                vec![],
                1,
                self.budget.clone(),
                self.object_wal.as_ref().map(|(wal, _)| wal.clone()),
            );
            // A table this process creates, owning the data directory, has no files: its cache
            // holds every row from the start (and maintenance may save it). A reader beside a
            // live server reads the files the server writes for it when first asked.
            table.inner.lock().last.files_loaded = self.writer.is_some();
            Arc::new(table)
        });
        Ok(table.clone())
    }

    /// Durably writes one batch: schema check, WAL append + fsync, then visible in queries.
    /// On any error nothing of the batch is stored.
    pub async fn write(
        self: &Arc<Self>,
        table: &str,
        batch: RecordBatch,
    ) -> Result<usize, StorageError> {
        self.write_with(table, batch, true).await
    }

    /// Appends a later table of a request already admitted with [`Self::admit`]: never refused
    /// for memory, so a request spanning tables is not cut in two (a client's retry would
    /// write its first tables twice). Bounded by the request's size.
    pub async fn write_admitted(
        self: &Arc<Self>,
        table: &str,
        batch: RecordBatch,
    ) -> Result<usize, StorageError> {
        self.write_with(table, batch, false).await
    }

    async fn write_with(
        self: &Arc<Self>,
        table: &str,
        batch: RecordBatch,
        refusable: bool,
    ) -> Result<usize, StorageError> {
        let writer = self.writer.as_ref().ok_or(StorageError::ReadOnly)?;
        if batch.column_by_name(TIME_COLUMN).is_none() {
            return Err(StorageError::MissingTime {
                table: table.into(),
            });
        }
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(0);
        }
        let _gate = if self.names_attachments(table) {
            Some(self.attachment_gate.read().await)
        } else {
            None
        };
        self.check_attachments(table, &batch).await?;
        let handle = self.table_or_create(table)?;
        handle.accept_schema(&batch)?;
        if refusable {
            self.make_room(&handle).await?;
        }
        // Backpressure: when writes outrun the background flush, the writer waits for one
        // instead of letting the buffer grow without bound.
        let (buffered_rows, buffered_bytes, _) = handle.buffer_size();
        if buffered_rows >= self.config.flush_max_rows.saturating_mul(2)
            || buffered_bytes >= self.config.flush_max_bytes.saturating_mul(2)
        {
            self.persist_table(&handle).await?;
        }
        let record = encode_record(&batch)?;
        writer.append(handle.clone(), record, batch).await?;
        let (buffered_rows, buffered_bytes, _) = handle.buffer_size();
        if (buffered_rows >= self.config.flush_max_rows
            || buffered_bytes >= self.config.flush_max_bytes)
            && !handle.persist_requested.swap(true, Ordering::AcqRel)
        {
            tracing::debug!(tenant = %self.name, table, buffered_rows, "buffer full; flushing");
            let tenant = self.clone();
            tokio::spawn(async move {
                if let Err(e) = tenant.persist_table(&handle).await {
                    tracing::error!(tenant = %tenant.name, table = %handle.name, error = %e, "size-triggered flush failed");
                }
                handle.persist_requested.store(false, Ordering::Release);
            });
        }
        Ok(rows)
    }

    /// Before an append when all buffers together are at their share of the memory budget:
    /// this table's own buffer is flushed, then the writer waits (up to
    /// `storage.buffer_wait`) for flushes elsewhere to make room; past that, 503 with a retry
    /// hint — nothing is appended that would take buffers past the budget.
    async fn make_room(&self, table: &Arc<Table>) -> Result<(), StorageError> {
        if !self.budget.full() {
            return Ok(());
        }
        if table.buffer_size().0 > 0 {
            self.persist_table(table).await?;
        }
        self.admit().await
    }

    /// Lets a write in when the buffers have room, waiting up to `storage.buffer_wait` for
    /// flushes to make some; past that, 503 with a retry hint, nothing written.
    pub async fn admit(&self) -> Result<(), StorageError> {
        if !self.budget.full() {
            return Ok(());
        }
        let wait = self.config.buffer_wait.0;
        if self.budget.room(wait).await {
            return Ok(());
        }
        Err(StorageError::BuffersFull {
            used: self.budget.used(),
            limit: self.budget.limit(),
            retry_after_secs: wait.as_secs().max(1),
        })
    }

    /// Moves everything buffered in `table` into Parquet files.
    pub async fn persist_table(&self, table: &Arc<Table>) -> Result<PersistStats, StorageError> {
        let writer = self.writer.as_ref().ok_or(StorageError::ReadOnly)?;
        let _one_at_a_time = table.persist_lock.lock().await;
        let rotation = writer.rotate(table.clone()).await?;
        if rotation.batches.is_empty() {
            // Nothing buffered: no new catalog version, only segments that held no rows.
            self.remove_segments_through(table, rotation.through_segment)
                .await?;
            return Ok(PersistStats::default());
        }
        let (added, stats) = self
            .write_files(table, rotation.batches, rotation.through_segment)
            .await?;
        let expected = table.inner.lock().wal_mark;
        let committed = self
            .catalog
            .commit(&[CatalogChange::AddFiles {
                table: table.name.clone(),
                schema: table.schema(),
                files: added,
                wal: self.config.wal_id.clone(),
                wal_persisted_through: rotation.through_segment,
                expect_persisted: Some(expected),
            }])
            .await;
        let manifest = match committed {
            Err(e @ StorageError::Fenced { .. }) => {
                // Another node persisted this process's rows: nothing of them may be written
                // again (see `wal_objects`).
                if let Some((_, lease)) = &self.object_wal {
                    lease.fence();
                }
                return Err(e);
            }
            other => other?,
        };
        {
            // Files in, buffer out, under one lock: readers see one or the other, never both.
            let mut inner = table.inner.lock();
            table.release_persisted(&mut inner);
            inner.wal_mark = rotation.through_segment;
            let dropped = inner.set_files(&manifest, &table.name);
            table.budget.release(dropped);
        }
        self.remove_segments_through(table, rotation.through_segment)
            .await?;
        if stats.rows > 0 {
            tracing::info!(tenant = %self.name, table = %table.name, rows = stats.rows, files = stats.files, bytes = stats.bytes, "buffer persisted");
        }
        Ok(stats)
    }

    /// Sorts and encodes `batches` into one Parquet file per day and uploads them; the files
    /// are not live until a catalog commit names them.
    pub(super) async fn write_files(
        &self,
        table: &Table,
        batches: Vec<RecordBatch>,
        seq: u64,
    ) -> Result<(Vec<ParquetFile>, PersistStats), StorageError> {
        // One schema for the sort, the inputs and the file, even if a write grows the table
        // meanwhile (the buffered batches are aligned to it).
        let schema = table.schema();
        let arrow_schema = schema.arrow_schema();
        let for_sort = schema.clone();
        let days = blocking(move || sorted_runs_by_day(&for_sort, &batches)).await?;
        let mut stats = PersistStats::default();
        let mut files = vec![];
        for day in days {
            let inputs = day
                .runs
                .into_iter()
                .map(|run| merge::run_input(&arrow_schema, run))
                .collect();
            let written = self.write_merged(table, &schema, day.day, inputs, seq);
            if let Some(file) = written.await? {
                stats.rows += file.rows;
                stats.files += 1;
                stats.bytes += file.size;
                files.push(file);
            }
        }
        Ok((files, stats))
    }

    /// Merges sorted `inputs` (all in `schema`) into one Parquet file of `day`, row group by
    /// row group, on a blocking thread (the merge and the encoding are CPU work).
    pub(super) async fn write_merged(
        &self,
        table: &Table,
        schema: &TableSchema,
        day: NaiveDate,
        inputs: Vec<SendableRecordBatchStream>,
        seq: u64,
    ) -> Result<Option<ParquetFile>, StorageError> {
        let path = ParquetFilePath::new(&table.name, day, seq);
        let objects = self.objects.clone();
        let schema = schema.clone();
        let pool = self.working_memory.clone();
        let runtime = tokio::runtime::Handle::current();
        let target = path.as_path().clone();
        let written = blocking(move || {
            runtime.block_on(merge::merge_into_file(
                objects,
                &target,
                &schema,
                merge::FileKind::Raw,
                inputs,
                &pool,
            ))
        })
        .await?;
        Ok(written.map(|w| ParquetFile {
            path: path.into_string(),
            min_time: w.min_time,
            max_time: w.max_time,
            rows: w.rows,
            size: w.bytes,
            rolled_up: vec![],
        }))
    }

    async fn remove_segments_through(
        &self,
        table: &Table,
        through: u64,
    ) -> Result<(), StorageError> {
        if let Some((wal, _)) = &self.object_wal {
            let objects = wal.objects.as_ref();
            return wal_objects::delete_through(objects, &wal.stream, &table.name, through).await;
        }
        for (seq, path) in wal::list_segments(&table.wal_dir)? {
            if seq <= through {
                std::fs::remove_file(&path).map_err(|source| StorageError::Io { path, source })?;
            }
        }
        Ok(())
    }

    pub async fn persist_all(&self) -> Result<PersistStats, StorageError> {
        let mut total = PersistStats::default();
        for table in self.tables() {
            let s = self.persist_table(&table).await?;
            total.rows += s.rows;
            total.files += s.files;
            total.bytes += s.bytes;
        }
        Ok(total)
    }

    /// Object store scoped to this tenant (the query layer reads Parquet through it).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.objects.clone()
    }
}

/// Runs CPU work on the blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StorageError::Internal {
            message: format!("storage task on the blocking pool failed: {e}"),
        })?
}
