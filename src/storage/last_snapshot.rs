//! The last-value cache kept across restarts. Maintenance writes each table's newest rows to
//! `{table}/_last_rows.parquet`, naming in its metadata the files whose rows they include;
//! after a start the cache begins from it and reads only the files it does not name (flushed
//! or compacted since) instead of every file of the table. A snapshot is only a head start:
//! a missing, unreadable or mismatched one means reading every file, as without it. Rows it
//! holds that retention dropped since are left out when read, like any expired row.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::last_read::offer_last;
use super::table::Table;
use super::tenant::blocking;
use super::{StorageError, TenantStore};

/// The metadata key listing (as a JSON array) the files whose rows the snapshot includes.
const COVERS_KEY: &str = "opsboard.last_rows.covers";

fn snapshot_path(table: &str) -> Path {
    Path::from(format!("{table}/_last_rows.parquet"))
}

impl TenantStore {
    /// Writes `table`'s newest rows when they changed since its last snapshot (and the cache
    /// holds every file's rows); returns whether it wrote one.
    pub(super) async fn save_last_rows(&self, table: &Arc<Table>) -> Result<bool, StorageError> {
        let (rows, covers, changes) = {
            let mut inner = table.inner.lock();
            let last = &inner.last;
            if !last.files_loaded || last.changes == last.saved_changes {
                return Ok(false);
            }
            // Every file listed now had its rows offered: at write time, or when the cache
            // read the files after the start.
            let covers: Vec<String> = inner.files.iter().map(|f| f.path.clone()).collect();
            let changes = inner.last.changes;
            (inner.last.rows()?, covers, changes)
        };
        let Some(rows) = rows else {
            return Ok(false);
        };
        // Encoding and decoding are CPU work (one row per series): on the blocking pool.
        let bytes = blocking(move || encode(&rows, &covers)).await?;
        self.objects
            .put(&snapshot_path(&table.name), bytes.into())
            .await?;
        table.inner.lock().last.saved_changes = changes;
        Ok(true)
    }

    /// Starts `table`'s cache from its snapshot; returns the files the snapshot includes
    /// (none when there is no usable snapshot: then every file is read).
    pub(super) async fn restore_last_rows(&self, table: &Arc<Table>) -> HashSet<String> {
        let restored = async {
            let bytes = match self.objects.get(&snapshot_path(&table.name)).await {
                Ok(found) => found.bytes().await?,
                Err(object_store::Error::NotFound { .. }) => return Ok(HashSet::new()),
                Err(e) => return Err(StorageError::from(e)),
            };
            let table = table.clone();
            blocking(move || decode_into(&table, bytes)).await
        };
        match restored.await {
            Ok(covers) => covers,
            Err(error) => {
                // Whatever it offered goes too; the caller reads every file and the buffer.
                table.inner.lock().forget_last(&table.name, &error);
                HashSet::new()
            }
        }
    }
}

/// The snapshot's bytes: `rows`, and the files they include in the metadata.
fn encode(rows: &RecordBatch, covers: &[String]) -> Result<Bytes, StorageError> {
    let covers = serde_json::to_string(covers).map_err(|e| StorageError::Internal {
        message: format!("listing the last-value snapshot's files: {e}"),
    })?;
    let properties = WriterProperties::builder()
        .set_key_value_metadata(Some(vec![KeyValue::new(COVERS_KEY.into(), covers)]))
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, rows.schema(), Some(properties))?;
    writer.write(rows)?;
    writer.close()?;
    Ok(Bytes::from(bytes))
}

/// Offers the snapshot's rows to `table`'s cache; returns the files they include.
fn decode_into(table: &Table, bytes: Bytes) -> Result<HashSet<String>, StorageError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let covers = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|kv| kv.key == COVERS_KEY))
        .and_then(|kv| kv.value.as_deref())
        .and_then(|v| serde_json::from_str::<HashSet<String>>(v).ok())
        .ok_or_else(|| StorageError::Internal {
            message: "the last-value snapshot does not list its files".into(),
        })?;
    for batch in builder.build()? {
        offer_last(table, &[batch?])?;
    }
    Ok(covers)
}
