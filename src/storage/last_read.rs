//! Reading the last-value cache (`last`): the newest row of every series within the table's
//! retention, and — the first time after a start — filling it from the table's files.

use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::schema::time_column;
use super::table::Table;
use super::{StorageError, TenantStore};

impl TenantStore {
    /// The newest row of every series of `table` within its retention, in the table's current
    /// schema; `None` for a table without rows. The first call after a start reads the files.
    pub async fn last_rows(&self, table: &Arc<Table>) -> Result<Option<RecordBatch>, StorageError> {
        if !table.inner.lock().last.files_loaded {
            let _one_loader = table.last_load.lock().await;
            if !table.inner.lock().last.files_loaded {
                self.load_last_rows(table).await?;
            }
        }
        let rows = {
            let mut inner = table.inner.lock();
            match inner.last.rows() {
                Ok(rows) => rows,
                Err(e) => {
                    inner.forget_last(&table.name, &e);
                    return Err(e);
                }
            }
        };
        let (Some(rows), Some(retention)) = (rows.clone(), self.retention(&table.name)) else {
            return Ok(rows);
        };
        let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        let cutoff = now_ns.saturating_sub(retention.as_nanos().min(i64::MAX as u128) as i64);
        let times = time_column(&rows)?;
        let mask: BooleanArray = times.iter().map(|t| t.map(|t| t >= cutoff)).collect();
        Ok(Some(filter_record_batch(&rows, &mask)?))
    }

    /// Whether [`Self::last_rows`] answers without reading the table's files first.
    pub fn last_rows_ready(&self, table: &Table) -> bool {
        table.inner.lock().last.files_loaded
    }

    /// Fills the cache from the table's files in the background (once), so a caller that
    /// would rather scan than wait for that can use the cache next time.
    pub fn warm_last_rows(self: &Arc<Self>, table: &Arc<Table>) {
        // Ready, or a reader already at it (a burst of requests after a start spawns one).
        if self.last_rows_ready(table) || table.last_load.try_lock().is_err() {
            return;
        }
        let (tenant, table) = (self.clone(), table.clone());
        tokio::spawn(async move {
            if let Err(e) = tenant.last_rows(&table).await {
                tracing::warn!(tenant = %tenant.name, table = %table.name, error = %e, "filling the last-value cache failed");
            }
        });
    }

    /// Offers every row of the table's files and buffer to its cache (a file dropped by
    /// retention meanwhile is skipped: its rows are expired), starting from the snapshot
    /// maintenance left (then only the files it does not include are read). Files are
    /// decoded a batch at a time, so the memory this takes is one compressed file and one
    /// batch.
    async fn load_last_rows(&self, table: &Arc<Table>) -> Result<(), StorageError> {
        // The snapshot first: should it fail half-way it empties the cache, and rows written
        // after the table's state is taken below are offered by their writes.
        let covered = self.restore_last_rows(table).await;
        let snapshot = table.snapshot()?;
        for file in snapshot.files.iter().filter(|f| !covered.contains(&f.path)) {
            let bytes = match self.objects.get(&file.path.as_str().into()).await {
                Ok(found) => found.bytes().await?,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            table
                .last_files_read
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let table = table.clone();
            tokio::task::spawn_blocking(move || -> Result<_, StorageError> {
                let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?
                    .with_batch_size(8192)
                    .build()?;
                for batch in reader {
                    offer_last(&table, &[batch?])?;
                }
                Ok(())
            })
            .await
            .map_err(|e| StorageError::Internal {
                message: format!("reading a file for the last-value cache: {e}"),
            })??;
        }
        offer_last(table, &snapshot.batches)?;
        table.inner.lock().last.files_loaded = true;
        Ok(())
    }
}

pub(super) fn offer_last(table: &Table, batches: &[RecordBatch]) -> Result<(), StorageError> {
    let mut inner = table.inner.lock();
    let inner = &mut *inner;
    for batch in batches {
        inner
            .last
            .offer(&inner.schema, &inner.arrow_schema, batch)?;
    }
    Ok(())
}
