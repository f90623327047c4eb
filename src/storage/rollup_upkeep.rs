//! Keeping a table's rollups in step with its files, as part of maintenance: raw files no rollup
//! holds yet are aggregated into it (new flushes, compaction output, a newly declared rollup's
//! backfill), each in one catalog commit that also marks the raw file as held; a day's small
//! rollup files are combined; rollup files past their retention go once no raw file of their day
//! is left; rollups no longer declared are dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::catalog::{CatalogChange, ParquetFile};
use super::merge;
use super::paths::{day_of, rollup_file_path};
use super::rollup::{self, RollupDef, Source};
use super::table::Table;
use super::{StorageError, TenantStore};
use object_store::ObjectStoreExt;

/// What one pass did to a table's rollups.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RollupReport {
    pub covered_files: usize,
    pub combined_files: usize,
    pub expired_files: usize,
    pub dropped_rollups: usize,
}

impl TenantStore {
    /// The rollups `table` declares now.
    pub fn rollups_of(&self, table: &str) -> Vec<RollupDef> {
        self.settings()
            .tables
            .get(table)
            .map(|t| RollupDef::declared(t, self.retention(table)))
            .unwrap_or_default()
    }

    pub(super) async fn upkeep_rollups(
        &self,
        table: &Arc<Table>,
        now_ms: i64,
    ) -> Result<RollupReport, StorageError> {
        let defs = self.rollups_of(&table.name);
        let mut report = RollupReport {
            dropped_rollups: self.drop_undeclared(table, &defs, now_ms).await?,
            ..Default::default()
        };
        for def in &defs {
            let uncovered: Vec<ParquetFile> = table
                .snapshot()?
                .files
                .into_iter()
                .filter(|f| !f.rolled_up.contains(&def.name))
                .collect();
            for file in uncovered {
                self.cover(table, def, &file, now_ms).await?;
                report.covered_files += 1;
            }
            report.expired_files += self.expire_rollup(table, def, now_ms).await?;
            report.combined_files += self.combine_rollup(table, def, now_ms).await?;
        }
        Ok(report)
    }

    async fn drop_undeclared(
        &self,
        table: &Table,
        defs: &[RollupDef],
        now_ms: i64,
    ) -> Result<usize, StorageError> {
        let snapshot = table.snapshot()?;
        let mut names: Vec<String> = snapshot.rollups.keys().cloned().collect();
        names.extend(
            snapshot
                .files
                .iter()
                .flat_map(|f| f.rolled_up.iter().cloned()),
        );
        names.sort();
        names.dedup();
        names.retain(|n| !defs.iter().any(|d| &d.name == n));
        if names.is_empty() {
            return Ok(0);
        }
        let changes: Vec<CatalogChange> = names
            .iter()
            .map(|rollup| CatalogChange::RemoveRollup {
                table: table.name.clone(),
                rollup: rollup.clone(),
                delete_after_ms: self.delete_after(now_ms),
            })
            .collect();
        let manifest = self.catalog.commit(&changes).await?;
        table.set_files(&manifest);
        tracing::info!(tenant = %self.name, table = %table.name, rollups = ?names, "dropped undeclared rollups");
        Ok(names.len())
    }

    /// Aggregates one raw file into `def` and marks it held, in one commit.
    async fn cover(
        &self,
        table: &Table,
        def: &RollupDef,
        file: &ParquetFile,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let (written, rows) = self
            .write_rollup(
                table,
                def,
                std::slice::from_ref(&file.path),
                Source::Raw,
                day_of(file.min_time),
            )
            .await?;
        if rows != file.rows {
            // Never mark a file held by a rollup that does not count each of its rows once.
            if let Some(w) = &written {
                let _ = self.objects.delete(&w.path.as_str().into()).await;
            }
            return Err(StorageError::Internal {
                message: format!(
                    "rollup {} of {} counted {rows} rows, the file has {}",
                    def.name, file.path, file.rows
                ),
            });
        }
        let manifest = self
            .catalog
            .commit(&[CatalogChange::AddRollup {
                table: table.name.clone(),
                rollup: def.name.clone(),
                covers: vec![file.path.clone()],
                files: written.into_iter().collect(),
                delete_after_ms: self.delete_after(now_ms),
            }])
            .await?;
        table.set_files(&manifest);
        Ok(())
    }

    /// Aggregates `paths` into one new file of `def` for `day` (not live until committed), and
    /// the raw rows it counts.
    async fn write_rollup(
        &self,
        table: &Table,
        def: &RollupDef,
        paths: &[String],
        source: Source,
        day: chrono::NaiveDate,
    ) -> Result<(Option<ParquetFile>, u64), StorageError> {
        let read_schema = match source {
            Source::Raw => table.arrow_schema(),
            Source::Partials => def.schema().arrow_schema(),
        };
        let path = rollup_file_path(&table.name, &def.name, day);
        let (objects, pool, def, paths) = (
            self.objects.clone(),
            self.working_memory.clone(),
            def.clone(),
            paths.to_vec(),
        );
        let target = path.clone();
        let runtime = tokio::runtime::Handle::current();
        // Aggregation and encoding are CPU work: off the async workers, as flushes are.
        let written = tokio::task::spawn_blocking(move || {
            runtime.block_on(async {
                let rows = rollup::aggregate(
                    objects.clone(),
                    &paths,
                    read_schema,
                    &def,
                    source,
                    pool.clone(),
                )
                .await?;
                let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
                let rows = rollup::counting_rows(rows, counted.clone());
                let written = merge::merge_into_file(
                    objects,
                    &target,
                    &def.schema(),
                    merge::FileKind::Rollup,
                    vec![rows],
                    &pool,
                )
                .await?;
                Ok::<_, StorageError>((written, counted.load(std::sync::atomic::Ordering::Relaxed)))
            })
        })
        .await
        .map_err(|e| StorageError::Internal {
            message: format!("rollup task failed: {e}"),
        })??;
        let (written, counted) = written;
        let file = written.map(|w| ParquetFile {
            path: path.to_string(),
            min_time: w.min_time,
            max_time: w.max_time,
            rows: w.rows,
            size: w.bytes,
            rolled_up: vec![],
        });
        Ok((file, counted))
    }

    /// Drops `def`'s files past its retention, once no raw file of their day is left (a raw
    /// file still live and marked held must find its rows in the rollup).
    async fn expire_rollup(
        &self,
        table: &Table,
        def: &RollupDef,
        now_ms: i64,
    ) -> Result<usize, StorageError> {
        let Some(retention) = def.retention else {
            return Ok(0);
        };
        let cutoff_ns = (now_ms - retention.as_millis() as i64).saturating_mul(1_000_000);
        let snapshot = table.snapshot()?;
        let raw_days: Vec<_> = snapshot.files.iter().map(|f| day_of(f.min_time)).collect();
        let expired: Vec<String> = snapshot
            .rollups
            .get(&def.name)
            .into_iter()
            .flatten()
            .filter(|f| f.max_time.saturating_add(def.interval_ns) <= cutoff_ns)
            .filter(|f| !raw_days.contains(&day_of(f.min_time)))
            .map(|f| f.path.clone())
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let manifest = self
            .catalog
            .commit(&[CatalogChange::RemoveRollupFiles {
                table: table.name.clone(),
                rollup: def.name.clone(),
                paths: expired.clone(),
                delete_after_ms: self.delete_after(now_ms),
            }])
            .await?;
        table.set_files(&manifest);
        Ok(expired.len())
    }

    /// Combines each day's small files of `def` into one, swapped in one commit.
    async fn combine_rollup(
        &self,
        table: &Table,
        def: &RollupDef,
        now_ms: i64,
    ) -> Result<usize, StorageError> {
        let target = self.config.compaction_target_rows as u64;
        let mut by_day: BTreeMap<chrono::NaiveDate, Vec<ParquetFile>> = BTreeMap::new();
        for f in table
            .snapshot()?
            .rollups
            .remove(&def.name)
            .unwrap_or_default()
        {
            if f.rows < target {
                by_day.entry(day_of(f.min_time)).or_default().push(f);
            }
        }
        let mut combined = 0;
        for (day, files) in by_day {
            if files.len() < self.config.compaction_min_files.max(2) {
                continue;
            }
            let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
            let (written, _) = self
                .write_rollup(table, def, &paths, Source::Partials, day)
                .await?;
            let manifest = self
                .catalog
                .commit(&[
                    CatalogChange::AddRollup {
                        table: table.name.clone(),
                        rollup: def.name.clone(),
                        covers: vec![],
                        files: written.into_iter().collect(),
                        delete_after_ms: self.delete_after(now_ms),
                    },
                    CatalogChange::RemoveRollupFiles {
                        table: table.name.clone(),
                        rollup: def.name.clone(),
                        paths: paths.clone(),
                        delete_after_ms: self.delete_after(now_ms),
                    },
                ])
                .await?;
            table.set_files(&manifest);
            combined += paths.len();
        }
        Ok(combined)
    }
}
