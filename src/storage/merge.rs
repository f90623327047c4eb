//! Streaming sort-merge into one Parquet file. Flushes and compactions both hand in runs that
//! are each already sorted by series then time (sorted buffer chunks, or existing files read a
//! batch at a time); DataFusion's streaming merge interleaves them and each row group is
//! encoded and uploaded as soon as it is full. The working set is a batch per input plus the
//! row group being encoded — not the day — so compacting a day costs the same memory as a
//! small flush.

use std::sync::Arc;

use arrow::compute::SortOptions;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet};
use datafusion::physical_plan::sorts::streaming_merge::StreamingMergeBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::StorageError;
use super::persist::SortedRun;
use super::schema::align_batch;
use super::schema::{ColumnKind, TableSchema, is_sum_column};
use super::table::time_bounds;

/// Rows the merge takes from an input at a time (and emits per output batch).
pub const MERGE_BATCH_ROWS: usize = 8192;
/// Rows per Parquet row group: the unit the writer holds before uploading it.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Rows per data page: small pages let the page index skip most of a row group when a query
/// asks for a few series, or a short time window (a series' day spans several pages, so the
/// raw rows of a range's partial buckets decode a page or two per series, not its whole day).
const PAGE_ROWS: usize = 1024;

/// What was written: the caller names the file in the catalog.
#[derive(Debug, Clone, Copy, Default)]
pub struct WrittenSummary {
    pub rows: u64,
    pub bytes: u64,
    pub min_time: i64,
    pub max_time: i64,
}

fn ordering(schema: &TableSchema, arrow_schema: &SchemaRef) -> Result<LexOrdering, StorageError> {
    let options = SortOptions {
        descending: false,
        nulls_first: true,
    };
    let exprs = schema.sort_columns().into_iter().filter_map(|name| {
        let index = arrow_schema.index_of(&name).ok()?;
        Some(PhysicalSortExpr::new(
            Arc::new(Column::new(&name, index)),
            options,
        ))
    });
    LexOrdering::new(exprs).ok_or_else(|| StorageError::Internal {
        message: "a table without a time column cannot be sorted".into(),
    })
}

/// What a written file holds, which decides its compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A table's rows: ZSTD, the smallest files — raw rows are the bulk of what is stored.
    Raw,
    /// A rollup's partial aggregates, read by every long-range panel: LZ4, which decodes about
    /// twice as fast as ZSTD for a fifth more bytes (the 20-panel bench dashboard, uncached:
    /// 165–173 → 98–115 ms).
    Rollup,
}

fn writer_properties(
    schema: &TableSchema,
    arrow_schema: &SchemaRef,
    kind: FileKind,
) -> Result<WriterProperties, StorageError> {
    let sorting: Vec<SortingColumn> = schema
        .sort_columns()
        .iter()
        .filter_map(|k| arrow_schema.index_of(k).ok())
        .map(|i| SortingColumn {
            column_idx: i as i32,
            descending: false,
            nulls_first: true,
        })
        .collect();
    let compression = match kind {
        FileKind::Raw => Compression::ZSTD(ZstdLevel::try_new(3)?),
        FileKind::Rollup => Compression::LZ4_RAW,
    };
    let mut builder = WriterProperties::builder()
        .set_compression(compression)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(sorting))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS);
    for column in schema.columns() {
        let path = ColumnPath::from(column.name.as_str());
        if column.kind == ColumnKind::Time {
            // Each series' times rise by a steady step: delta-encoded they shrink to almost
            // nothing, where a dictionary of every distinct instant is most of the column.
            builder = builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
        } else if is_sum_column(&column.name) {
            // A rollup's sums hardly ever repeat, so their dictionary is as big as the values,
            // and reading one page of a row group would load and decode all of it.
            builder = builder.set_column_dictionary_enabled(path, false);
        }
    }
    Ok(builder.build())
}

/// A sorted run of buffered rows as one merge input, copied out `MERGE_BATCH_ROWS` at a time:
/// the merge holds a slice per run, never a sorted copy of the buffer.
pub fn run_input(arrow_schema: &SchemaRef, run: SortedRun) -> SendableRecordBatchStream {
    let slices = (0..run.rows()).step_by(MERGE_BATCH_ROWS).map(move |start| {
        run.slice(start, MERGE_BATCH_ROWS)
            .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
    });
    Box::pin(RecordBatchStreamAdapter::new(
        arrow_schema.clone(),
        futures::stream::iter(slices),
    ))
}

/// In-memory sorted batches as one merge input, handed out `MERGE_BATCH_ROWS` at a time so the
/// merge's row keys cover a slice, not the whole run.
#[cfg(test)]
pub fn batches_input(
    arrow_schema: &SchemaRef,
    batches: Vec<arrow::array::RecordBatch>,
) -> SendableRecordBatchStream {
    let slices = batches.into_iter().flat_map(|batch| {
        let rows = batch.num_rows();
        (0..rows)
            .step_by(MERGE_BATCH_ROWS)
            .map(move |start| Ok(batch.slice(start, MERGE_BATCH_ROWS.min(rows - start))))
            .collect::<Vec<_>>()
    });
    Box::pin(RecordBatchStreamAdapter::new(
        arrow_schema.clone(),
        futures::stream::iter(slices),
    ))
}

/// An existing (sorted) Parquet file as one merge input, decoded a batch at a time and aligned
/// to the table's current schema (older files may lack newer columns). Only the compressed file
/// is held, not its decoded rows.
pub async fn file_input(
    objects: &Arc<dyn ObjectStore>,
    path: &str,
    arrow_schema: &SchemaRef,
) -> Result<SendableRecordBatchStream, StorageError> {
    let bytes = objects.get(&Path::from(path)).await?.bytes().await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?
        .with_batch_size(MERGE_BATCH_ROWS)
        .build()?;
    let schema = arrow_schema.clone();
    let aligned = reader.map(move |batch| {
        let batch = batch.map_err(|e| DataFusionError::External(Box::new(e)))?;
        align_batch(&batch, &schema).map_err(|e| DataFusionError::External(Box::new(e)))
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(
        arrow_schema.clone(),
        futures::stream::iter(aligned),
    )))
}

/// Merges `inputs` (each sorted by series then time) into one Parquet file at `path`, row group
/// by row group. `pool` accounts the merge's working memory. Nothing is written for no rows.
pub async fn merge_into_file(
    objects: Arc<dyn ObjectStore>,
    path: &Path,
    schema: &TableSchema,
    kind: FileKind,
    inputs: Vec<SendableRecordBatchStream>,
    pool: &Arc<dyn MemoryPool>,
) -> Result<Option<WrittenSummary>, StorageError> {
    let arrow_schema = schema.arrow_schema();
    let ordering = ordering(schema, &arrow_schema)?;
    let metrics = ExecutionPlanMetricsSet::new();
    let mut merged = StreamingMergeBuilder::new()
        .with_streams(inputs)
        .with_schema(arrow_schema.clone())
        .with_expressions(&ordering)
        .with_metrics(BaselineMetrics::new(&metrics, 0))
        .with_batch_size(MERGE_BATCH_ROWS)
        .with_reservation(MemoryConsumer::new("flush and compaction merge").register(pool))
        .build()?;
    let props = writer_properties(schema, &arrow_schema, kind)?;
    let sink = BufWriter::new(objects, path.clone());
    let mut writer = AsyncArrowWriter::try_new(sink, arrow_schema, Some(props))?;
    match copy(&mut merged, &mut writer).await {
        Ok(Some(mut summary)) => {
            writer.finish().await?;
            summary.bytes = writer.bytes_written() as u64;
            Ok(Some(summary))
        }
        // No rows: nothing was uploaded (the first part goes out only when a buffer fills).
        Ok(None) => Ok(None),
        Err(e) => {
            // A half-done multipart upload is given up so it leaves nothing behind.
            let _ = writer.into_inner().abort().await;
            Err(e)
        }
    }
}

async fn copy(
    merged: &mut SendableRecordBatchStream,
    writer: &mut AsyncArrowWriter<BufWriter>,
) -> Result<Option<WrittenSummary>, StorageError> {
    let mut summary: Option<WrittenSummary> = None;
    while let Some(batch) = merged.next().await {
        let batch = batch?;
        let Some((lo, hi)) = time_bounds(&batch) else {
            continue;
        };
        let s = summary.get_or_insert(WrittenSummary {
            min_time: lo,
            max_time: hi,
            ..Default::default()
        });
        s.rows += batch.num_rows() as u64;
        s.min_time = s.min_time.min(lo);
        s.max_time = s.max_time.max(hi);
        writer.write(&batch).await?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::schema::{tag_type, time_type};
    use arrow::array::RecordBatch;
    use arrow::array::{DictionaryArray, Float64Array, StringArray, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Int32Type, Schema};
    use datafusion::execution::memory_pool::UnboundedMemoryPool;
    use object_store::memory::InMemory;

    fn batch(hosts: &[&str], times: &[i64], with_extra: bool) -> RecordBatch {
        let mut fields = vec![
            Field::new("time", time_type(), false),
            Field::new("host", tag_type(), true),
            Field::new("v", DataType::Float64, true),
        ];
        let mut columns: Vec<arrow::array::ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(times.to_vec()).with_timezone("UTC")),
            Arc::new(
                hosts
                    .iter()
                    .copied()
                    .collect::<DictionaryArray<Int32Type>>(),
            ),
            Arc::new(Float64Array::from(
                times.iter().map(|t| *t as f64).collect::<Vec<_>>(),
            )),
        ];
        if with_extra {
            fields.push(Field::new("w", DataType::Float64, true));
            columns.push(Arc::new(Float64Array::from(vec![1.0; times.len()])));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    fn sorted_keys(batches: &[RecordBatch]) -> Vec<(String, i64)> {
        let mut keys = vec![];
        for b in batches {
            let host =
                arrow::compute::cast(b.column_by_name("host").unwrap(), &DataType::Utf8).unwrap();
            let host = host.as_any().downcast_ref::<StringArray>().unwrap();
            let time = b
                .column_by_name("time")
                .unwrap()
                .as_any()
                .downcast_ref::<TimestampNanosecondArray>()
                .unwrap();
            for i in 0..b.num_rows() {
                keys.push((host.value(i).to_string(), time.value(i)));
            }
        }
        keys
    }

    #[tokio::test]
    async fn merges_sorted_runs_and_files_of_older_schemas_into_one_sorted_file() {
        let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        // An older file without column `w`, and two in-memory runs that overlap it in time.
        let old = batch(&["a", "a", "c"], &[1, 5, 2], false);
        let old_schema = TableSchema::default().merge("t", &old.schema()).unwrap();
        let old_path = Path::from("t/old.parquet");
        let old_input = batches_input(&old_schema.arrow_schema(), vec![old]);
        merge_into_file(
            objects.clone(),
            &old_path,
            &old_schema,
            FileKind::Raw,
            vec![old_input],
            &pool,
        )
        .await
        .unwrap()
        .unwrap();
        let new = batch(&["a", "b", "b"], &[3, 1, 9], true);
        let schema = old_schema.merge("t", &new.schema()).unwrap();
        let arrow_schema = schema.arrow_schema();
        let n = MERGE_BATCH_ROWS * 2 + 7;
        let long = batch(&vec!["d"; n], &(0..n as i64).collect::<Vec<_>>(), true);
        let inputs = vec![
            file_input(&objects, "t/old.parquet", &arrow_schema)
                .await
                .unwrap(),
            batches_input(&arrow_schema, vec![new]),
            batches_input(&arrow_schema, vec![long]),
        ];
        let path = Path::from("t/merged.parquet");
        let written = merge_into_file(
            objects.clone(),
            &path,
            &schema,
            FileKind::Raw,
            inputs,
            &pool,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(pool.reserved(), 0, "working memory given back");
        assert_eq!(
            (written.rows, written.min_time, written.max_time),
            (6 + n as u64, 0, n as i64 - 1)
        );
        let bytes = objects.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(written.bytes, bytes.len() as u64);
        let read = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = read.collect::<Result<_, _>>().unwrap();
        let keys = sorted_keys(&batches);
        assert_eq!(keys.len(), 6 + n);
        assert!(
            keys.windows(2).all(|w| w[0] <= w[1]),
            "sorted by series then time"
        );
        assert_eq!(
            &keys[..6],
            &[
                ("a".to_string(), 1),
                ("a".to_string(), 3),
                ("a".to_string(), 5),
                ("b".to_string(), 1),
                ("b".to_string(), 9),
                ("c".to_string(), 2),
            ]
        );
    }

    #[tokio::test]
    async fn time_is_delta_encoded_sums_have_no_dictionary_and_rollups_use_lz4() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        let mut rows = batch(&["a"; 3], &[10, 20, 30], true);
        let mut fields: Vec<Field> = rows
            .schema()
            .fields()
            .iter()
            .map(|f| (**f).clone())
            .collect();
        fields[3] = Field::new("v#sum", DataType::Float64, true);
        rows =
            RecordBatch::try_new(Arc::new(Schema::new(fields)), rows.columns().to_vec()).unwrap();
        let schema = TableSchema::default().merge("t", &rows.schema()).unwrap();
        let mut groups = vec![];
        for kind in [FileKind::Rollup, FileKind::Raw] {
            let input = batches_input(&schema.arrow_schema(), vec![rows.clone()]);
            let path = Path::from(format!("t/{kind:?}.parquet"));
            merge_into_file(objects.clone(), &path, &schema, kind, vec![input], &pool)
                .await
                .unwrap()
                .unwrap();
            let bytes = objects.get(&path).await.unwrap().bytes().await.unwrap();
            let reader = SerializedFileReader::new(bytes).unwrap();
            groups.push(reader.metadata().row_group(0).clone());
        }
        let codecs = |group: &parquet::file::metadata::RowGroupMetaData| {
            let codecs: Vec<_> = group.columns().iter().map(|c| c.compression()).collect();
            assert_eq!(codecs.len(), schema.columns().len());
            codecs
        };
        assert!(
            codecs(&groups[0])
                .iter()
                .all(|c| *c == Compression::LZ4_RAW)
        );
        assert!(
            codecs(&groups[1])
                .iter()
                .all(|c| matches!(c, Compression::ZSTD(_)))
        );
        let column = |name: &str| {
            groups[0]
                .columns()
                .iter()
                .find(|c| c.column_path().string() == name)
                .unwrap()
                .clone()
        };
        let time = column("time");
        assert!(time.dictionary_page_offset().is_none());
        assert!(
            time.encodings().any(|e| e == Encoding::DELTA_BINARY_PACKED),
            "{:?}",
            time.encodings().collect::<Vec<_>>()
        );
        assert!(column("v#sum").dictionary_page_offset().is_none());
        // Tags and plain fields keep their dictionary: they repeat.
        assert!(column("host").dictionary_page_offset().is_some());
        assert!(column("v").dictionary_page_offset().is_some());
    }

    #[tokio::test]
    async fn no_rows_write_no_file() {
        let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        let empty = batch(&[], &[], false);
        let schema = TableSchema::default().merge("t", &empty.schema()).unwrap();
        let input = batches_input(&schema.arrow_schema(), vec![empty]);
        let path = Path::from("t/none.parquet");
        let written = merge_into_file(
            objects.clone(),
            &path,
            &schema,
            FileKind::Raw,
            vec![input],
            &pool,
        )
        .await
        .unwrap();
        assert!(written.is_none());
        assert!(objects.head(&path).await.is_err());
    }
}
