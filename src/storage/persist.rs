//! Buffer → Parquet. Rows are split by UTC day, sorted by tags then time (so a series is
//! contiguous and row-group statistics prune well), and written as zstd Parquet with page-level
//! statistics and the page index. Pure CPU work: callers run it on a blocking thread.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch, TimestampNanosecondArray, UInt32Array};
use arrow::compute::{concat_batches, filter_record_batch, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use bytes::Bytes;
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::StorageError;
use super::paths::day_of;
use super::schema::{TIME_COLUMN, TableSchema};
use super::table::align_batch;

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// One Parquet file ready to upload.
#[derive(Debug)]
pub struct EncodedFile {
    pub day: NaiveDate,
    pub bytes: Bytes,
    pub rows: u64,
    pub min_time: i64,
    pub max_time: i64,
}

/// Encodes `batches` (any older schemas of the table) into one sorted Parquet file per day.
pub fn encode_by_day(
    schema: &TableSchema,
    batches: &[RecordBatch],
) -> Result<Vec<EncodedFile>, StorageError> {
    let arrow_schema = schema.arrow_schema();
    let aligned = batches
        .iter()
        .map(|b| align_batch(b, &arrow_schema))
        .collect::<Result<Vec<_>, _>>()?;
    let all = concat_batches(&arrow_schema, &aligned)?;
    if all.num_rows() == 0 {
        return Ok(vec![]);
    }
    let time = time_column(&all)?;
    let mut days: Vec<i64> = time
        .values()
        .iter()
        .map(|t| t.div_euclid(NANOS_PER_DAY))
        .collect();
    days.sort_unstable();
    days.dedup();
    let mut files = Vec::with_capacity(days.len());
    for day in days {
        let part = if files.is_empty() && all_in_day(time, day) {
            all.clone()
        } else {
            let mask: BooleanArray = time
                .values()
                .iter()
                .map(|t| Some(t.div_euclid(NANOS_PER_DAY) == day))
                .collect();
            filter_record_batch(&all, &mask)?
        };
        let sorted = sort_by_series(schema, &part)?;
        files.push(encode_file(schema, &arrow_schema, &sorted)?);
    }
    Ok(files)
}

fn all_in_day(time: &TimestampNanosecondArray, day: i64) -> bool {
    time.values()
        .iter()
        .all(|t| t.div_euclid(NANOS_PER_DAY) == day)
}

fn time_column(batch: &RecordBatch) -> Result<&TimestampNanosecondArray, StorageError> {
    batch
        .column_by_name(TIME_COLUMN)
        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
        .ok_or_else(|| StorageError::Internal {
            message: "buffered batch has no nanosecond `time` column".into(),
        })
}

/// Sort keys: every tag in schema order, then time.
fn sort_columns(schema: &TableSchema) -> Vec<String> {
    schema
        .tags()
        .map(str::to_string)
        .chain(std::iter::once(TIME_COLUMN.to_string()))
        .collect()
}

/// Sorts rows by tags then time; the row format handles dictionaries and nulls uniformly.
pub fn sort_by_series(
    schema: &TableSchema,
    batch: &RecordBatch,
) -> Result<RecordBatch, StorageError> {
    let keys = sort_columns(schema);
    let columns: Vec<_> = keys
        .iter()
        .filter_map(|k| batch.column_by_name(k).cloned())
        .collect();
    let fields = columns
        .iter()
        .map(|c| SortField::new(c.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields)?;
    let rows = converter.convert_columns(&columns)?;
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    order.sort_by(|a, b| rows.row(*a as usize).cmp(&rows.row(*b as usize)));
    if order.windows(2).all(|w| w[0] < w[1]) {
        return Ok(batch.clone());
    }
    Ok(take_record_batch(batch, &UInt32Array::from(order))?)
}

fn encode_file(
    schema: &TableSchema,
    arrow_schema: &SchemaRef,
    batch: &RecordBatch,
) -> Result<EncodedFile, StorageError> {
    let time = time_column(batch)?;
    let min_time = arrow::compute::min(time).unwrap_or_default();
    let max_time = arrow::compute::max(time).unwrap_or_default();
    let sorting: Vec<SortingColumn> = sort_columns(schema)
        .iter()
        .filter_map(|k| arrow_schema.index_of(k).ok())
        .map(|i| SortingColumn {
            column_idx: i as i32,
            descending: false,
            nulls_first: true,
        })
        .collect();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(sorting))
        .build();
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let mut writer = ArrowWriter::try_new(&mut out, Arc::clone(arrow_schema), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(EncodedFile {
        day: day_of(min_time),
        bytes: Bytes::from(out),
        rows: batch.num_rows() as u64,
        min_time,
        max_time,
    })
}

/// Decodes a whole Parquet file (used by compaction).
pub fn decode_file(bytes: Bytes) -> Result<Vec<RecordBatch>, StorageError> {
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::schema::{tag_type, time_type};
    use arrow::array::{DictionaryArray, Float64Array};
    use arrow::datatypes::{Field, Int32Type, Schema};

    fn batch(hosts: Vec<&str>, times: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("time", time_type(), false),
            Field::new("host", tag_type(), true),
            Field::new("v", arrow::datatypes::DataType::Float64, true),
        ]));
        let n = times.len();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampNanosecondArray::from(times).with_timezone("UTC")),
                Arc::new(hosts.into_iter().collect::<DictionaryArray<Int32Type>>()),
                Arc::new(Float64Array::from(
                    (0..n).map(|i| i as f64).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    #[test]
    fn splits_by_day_and_sorts_by_series_then_time() {
        let b = batch(
            vec!["b", "a", "b", "a"],
            vec![NANOS_PER_DAY + 5, 3, 2, NANOS_PER_DAY + 1],
        );
        let schema = TableSchema::default().merge("t", &b.schema()).unwrap();
        let files = encode_by_day(&schema, &[b]).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(
            (files[0].min_time, files[0].max_time, files[0].rows),
            (2, 3, 2)
        );
        let decoded = decode_file(files[0].bytes.clone()).unwrap();
        let pretty = arrow::util::pretty::pretty_format_batches(&decoded)
            .unwrap()
            .to_string();
        let a = pretty.find("| a ").unwrap();
        let b = pretty.find("| b ").unwrap();
        assert!(a < b, "{pretty}");
        assert_eq!(files[1].day, NaiveDate::from_ymd_opt(1970, 1, 2).unwrap());
    }
}
