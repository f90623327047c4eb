//! Background upkeep of a tenant's tables: age/size-triggered flushes, retention (of rows, and
//! of attachments no row refers to any more — `attachment_gc`), compaction
//! of a day's small files (a streaming merge of the already-sorted files, so its memory is a
//! batch per file, not the day), and deferred deletion of files dropped from the catalog. Every step
//! changes the catalog first and deletes objects last (after a grace period), so a query that
//! planned against the old file list still finds its files. Time comes in as `now_ms` so tests
//! drive it without sleeping.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::ObjectStoreExt;

use super::catalog::{CatalogChange, ParquetFile};
use super::merge;
use super::paths::day_of;
use super::table::Table;
use super::{StorageError, TenantStore};

/// What one maintenance pass did, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub flushed_tables: usize,
    pub expired_files: usize,
    pub compacted_files: usize,
    pub deleted_files: usize,
    /// Raw files aggregated into rollups, and rollup files combined or expired.
    pub rollup_files: usize,
    /// Attachments no row refers to any more, deleted.
    pub deleted_attachments: usize,
    /// Tables whose newest rows were saved for the next start (see `last_snapshot`).
    pub last_rows_snapshots: usize,
}

impl TenantStore {
    /// Flushes tables whose buffer is over the size limit or older than `flush_max_age` — and
    /// every buffer while all of them together are near their share of the memory budget.
    pub async fn flush_due(&self) -> Result<usize, StorageError> {
        let mut flushed = 0;
        let pressed = self.buffer_budget().pressed();
        for table in self.tables() {
            let (rows, bytes, age) = table.buffer_size();
            let due = pressed
                || rows >= self.config.flush_max_rows
                || bytes >= self.config.flush_max_bytes
                || age.is_some_and(|a| a >= self.config.flush_max_age.0);
            if rows > 0 && due {
                self.persist_table(&table).await?;
                flushed += 1;
            }
        }
        Ok(flushed)
    }

    /// Retention, compaction and deferred deletes, as of `now_ms`.
    pub async fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport, StorageError> {
        let mut report = MaintenanceReport::default();
        if !self
            .settings_applied
            .load(std::sync::atomic::Ordering::Acquire)
        {
            tracing::debug!(tenant = %self.name, "maintenance waits for the tenant's settings");
            return Ok(report);
        }
        for table in self.tables() {
            report.expired_files += self.enforce_retention(&table, now_ms).await?;
            report.compacted_files += self.compact(&table, now_ms).await?;
            let rollups = self.upkeep_rollups(&table, now_ms).await?;
            report.rollup_files +=
                rollups.covered_files + rollups.combined_files + rollups.expired_files;
            // A head start for the next start; losing it costs only that.
            match self.save_last_rows(&table).await {
                Ok(saved) => report.last_rows_snapshots += usize::from(saved),
                Err(e) => {
                    tracing::warn!(tenant = %self.name, table = %table.name, error = %e, "saving the last-value snapshot failed")
                }
            }
        }
        report.deleted_files = self.delete_pending(now_ms).await?;
        report.deleted_attachments = self.collect_attachments(now_ms).await?;
        Ok(report)
    }

    fn retention_ms(&self, table: &str) -> Option<i64> {
        self.retention(table).map(|d| d.as_millis() as i64)
    }

    /// How long `table` keeps rows: its own retention, else the server's; none keeps them.
    pub fn retention(&self, table: &str) -> Option<std::time::Duration> {
        self.settings()
            .tables
            .get(table)
            .and_then(|t| t.retention)
            .or(self.config.retention)
            .map(|d| d.0)
    }

    pub(super) fn delete_after(&self, now_ms: i64) -> i64 {
        now_ms + self.config.delete_grace.0.as_millis() as i64
    }

    /// Drops files whose newest row is older than the table's retention.
    async fn enforce_retention(
        &self,
        table: &Arc<Table>,
        now_ms: i64,
    ) -> Result<usize, StorageError> {
        let Some(retention_ms) = self.retention_ms(&table.name) else {
            return Ok(0);
        };
        let cutoff_ns = (now_ms - retention_ms).saturating_mul(1_000_000);
        let expired: Vec<String> = table
            .snapshot()?
            .files
            .iter()
            .filter(|f| f.max_time < cutoff_ns)
            .map(|f| f.path.clone())
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let manifest = self
            .catalog
            .commit(&[CatalogChange::RemoveFiles {
                table: table.name.clone(),
                paths: expired.clone(),
                delete_after_ms: self.delete_after(now_ms),
            }])
            .await?;
        table.set_files(&manifest);
        tracing::info!(tenant = %self.name, table = %table.name, files = expired.len(), "retention dropped files");
        Ok(expired.len())
    }

    /// Merges each day's small files into one, swapping them in the catalog in one commit.
    async fn compact(&self, table: &Arc<Table>, now_ms: i64) -> Result<usize, StorageError> {
        let target = self.config.compaction_target_rows as u64;
        // Only files held by the same rollups merge: the output is held by exactly those.
        let mut by_day: BTreeMap<(chrono::NaiveDate, Vec<String>), Vec<ParquetFile>> =
            BTreeMap::new();
        for f in table.snapshot()?.files {
            if f.rows < target {
                let mut held = f.rolled_up.clone();
                held.sort();
                by_day
                    .entry((day_of(f.min_time), held))
                    .or_default()
                    .push(f);
            }
        }
        let mut compacted = 0;
        for ((day, held), mut files) in by_day {
            if files.len() < self.config.compaction_min_files {
                continue;
            }
            files.sort_by(|a, b| a.path.cmp(&b.path));
            let mut rows = 0;
            files.retain(|f| {
                rows += f.rows;
                rows <= target
            });
            if files.len() < 2 {
                continue;
            }
            let schema = table.schema();
            let arrow_schema = schema.arrow_schema();
            let mut inputs = Vec::with_capacity(files.len());
            for f in &files {
                inputs.push(merge::file_input(&self.objects, &f.path, &arrow_schema).await?);
            }
            let added: Vec<ParquetFile> = self
                .write_merged(table, &schema, day, inputs, 0)
                .await?
                .into_iter()
                .map(|f| ParquetFile {
                    rolled_up: held.clone(),
                    ..f
                })
                .collect();
            let removed: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
            // One commit adds the merged file and removes its inputs: no version of the catalog
            // has both (duplicates) or neither (a gap).
            let manifest = self
                .catalog
                .commit(&[
                    CatalogChange::AddFiles {
                        table: table.name.clone(),
                        schema: table.schema(),
                        files: added,
                        wal: String::new(),
                        wal_persisted_through: 0,
                        expect_persisted: None,
                    },
                    CatalogChange::RemoveFiles {
                        table: table.name.clone(),
                        paths: removed.clone(),
                        delete_after_ms: self.delete_after(now_ms),
                    },
                ])
                .await?;
            table.set_files(&manifest);
            tracing::info!(tenant = %self.name, table = %table.name, %day, files = removed.len(), rows, "compacted");
            compacted += removed.len();
        }
        Ok(compacted)
    }

    /// Deletes objects whose grace period has passed, then forgets them in the catalog.
    async fn delete_pending(&self, now_ms: i64) -> Result<usize, StorageError> {
        let manifest = self.catalog.current().await;
        let due: Vec<String> = manifest
            .pending_deletes
            .iter()
            .filter(|d| d.after_ms <= now_ms)
            .map(|d| d.path.clone())
            .collect();
        if due.is_empty() {
            return Ok(0);
        }
        for path in &due {
            match self.objects.delete(&path.as_str().into()).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.catalog
            .commit(&[CatalogChange::Deleted { paths: due.clone() }])
            .await?;
        Ok(due.len())
    }
}
