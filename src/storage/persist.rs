//! Buffer → sorted runs, one set per UTC day. Rows are split by day and grouped into chunks of
//! at most `SORT_CHUNK_ROWS`; each chunk is sorted by tags then time (so a series is contiguous
//! and row-group statistics prune well) as an order to read its rows in, not as a copy. `merge`
//! reads each run a slice at a time and interleaves the runs into the day's Parquet file, so a
//! flush holds the buffer it already had, four bytes of order per row and a slice per run —
//! never a sorted copy of the buffer. Pure CPU work: callers run it on a blocking thread.

use std::collections::BTreeMap;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::compute::{filter_record_batch, interleave_record_batch};
use arrow::error::ArrowError;
use arrow::row::{RowConverter, SortField};
use chrono::NaiveDate;

use super::StorageError;
use super::paths::day_of;
use super::schema::{TableSchema, align_batch, time_column};

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;
/// Rows sorted at once: bounds the row keys a sort builds.
const SORT_CHUNK_ROWS: usize = 64 * 1024;

/// One UTC day of buffered rows as sorted runs, ready to merge.
#[derive(Debug)]
pub struct DayRuns {
    pub day: NaiveDate,
    pub runs: Vec<SortedRun>,
}

/// A chunk's rows in series-then-time order without copying them: the pieces as buffered
/// and the (piece, row) order to read them in.
#[derive(Debug)]
pub struct SortedRun {
    pieces: Vec<RecordBatch>,
    order: Vec<(u32, u32)>,
}

impl SortedRun {
    pub fn rows(&self) -> usize {
        self.order.len()
    }

    /// `len` rows of the run from `start`, copied into one compact batch.
    pub fn slice(&self, start: usize, len: usize) -> Result<RecordBatch, ArrowError> {
        let pieces: Vec<&RecordBatch> = self.pieces.iter().collect();
        let end = (start + len).min(self.order.len());
        let indices: Vec<(usize, usize)> = self.order[start..end]
            .iter()
            .map(|&(p, r)| (p as usize, r as usize))
            .collect();
        interleave_record_batch(&pieces, &indices)
    }
}

/// Splits `batches` (any older schemas of the table) by UTC day and sorts each day's rows in
/// chunks.
pub fn sorted_runs_by_day(
    schema: &TableSchema,
    batches: &[RecordBatch],
) -> Result<Vec<DayRuns>, StorageError> {
    let arrow_schema = schema.arrow_schema();
    let mut days: BTreeMap<i64, Vec<RecordBatch>> = BTreeMap::new();
    for batch in batches {
        let batch = align_batch(batch, &arrow_schema)?;
        split_days(&batch, &mut days)?;
    }
    days.into_iter()
        .map(|(day, parts)| {
            let runs = chunks(parts)
                .into_iter()
                .map(|pieces| sort_by_series(schema, pieces))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(DayRuns {
                day: day_of(day * NANOS_PER_DAY),
                runs,
            })
        })
        .collect()
}

fn split_days(
    batch: &RecordBatch,
    days: &mut BTreeMap<i64, Vec<RecordBatch>>,
) -> Result<(), StorageError> {
    if batch.num_rows() == 0 {
        return Ok(());
    }
    let time = time_column(batch)?;
    let day_at = |i: usize| time.value(i).div_euclid(NANOS_PER_DAY);
    let first = day_at(0);
    if (0..time.len()).all(|i| day_at(i) == first) {
        days.entry(first).or_default().push(batch.clone());
        return Ok(());
    }
    let mut present: Vec<i64> = (0..time.len()).map(day_at).collect();
    present.sort_unstable();
    present.dedup();
    for day in present {
        let mask: BooleanArray = (0..time.len()).map(|i| Some(day_at(i) == day)).collect();
        days.entry(day)
            .or_default()
            .push(filter_record_batch(batch, &mask)?);
    }
    Ok(())
}

/// Groups batches into chunks of at most `SORT_CHUNK_ROWS` rows: small write batches share a
/// chunk, large uploads are cut (zero-copy slices).
fn chunks(parts: Vec<RecordBatch>) -> Vec<Vec<RecordBatch>> {
    let mut out = vec![];
    let mut pending: Vec<RecordBatch> = vec![];
    let mut pending_rows = 0;
    let slices = parts.into_iter().flat_map(|b| {
        let rows = b.num_rows();
        (0..rows)
            .step_by(SORT_CHUNK_ROWS)
            .map(move |start| b.slice(start, SORT_CHUNK_ROWS.min(rows - start)))
            .collect::<Vec<_>>()
    });
    for slice in slices {
        if pending_rows + slice.num_rows() > SORT_CHUNK_ROWS && !pending.is_empty() {
            out.push(std::mem::take(&mut pending));
            pending_rows = 0;
        }
        pending_rows += slice.num_rows();
        pending.push(slice);
    }
    if !pending.is_empty() {
        out.push(pending);
    }
    out
}

/// Orders a chunk's rows by tags then time; the row format compares dictionaries (whose keys
/// differ from piece to piece) and nulls uniformly. The keys live only during the sort.
fn sort_by_series(
    schema: &TableSchema,
    pieces: Vec<RecordBatch>,
) -> Result<SortedRun, StorageError> {
    let keys = schema.sort_columns();
    let Some(first) = pieces.first() else {
        return Ok(SortedRun {
            pieces,
            order: vec![],
        });
    };
    let fields = keys
        .iter()
        .filter_map(|k| first.column_by_name(k))
        .map(|c| SortField::new(c.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields)?;
    let rows = pieces
        .iter()
        .map(|piece| {
            let columns: Vec<_> = keys
                .iter()
                .filter_map(|k| piece.column_by_name(k).cloned())
                .collect();
            converter.convert_columns(&columns)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut order: Vec<(u32, u32)> = pieces
        .iter()
        .enumerate()
        .flat_map(|(p, piece)| (0..piece.num_rows() as u32).map(move |r| (p as u32, r)))
        .collect();
    order.sort_by(|a, b| {
        rows[a.0 as usize]
            .row(a.1 as usize)
            .cmp(&rows[b.0 as usize].row(b.1 as usize))
    });
    Ok(SortedRun { pieces, order })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::schema::{tag_type, time_type};
    use arrow::array::{DictionaryArray, Float64Array, TimestampNanosecondArray};
    use arrow::datatypes::{Field, Int32Type, Schema};
    use std::sync::Arc;

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

    fn hosts_of(batch: &RecordBatch) -> Vec<String> {
        let col = arrow::compute::cast(
            batch.column_by_name("host").unwrap(),
            &arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let col = col
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        col.iter().map(|v| v.unwrap_or("").to_string()).collect()
    }

    #[test]
    fn splits_by_day_and_sorts_each_run_by_series_then_time() {
        let b = batch(
            vec!["b", "a", "b", "a"],
            vec![NANOS_PER_DAY + 5, 3, 2, NANOS_PER_DAY + 1],
        );
        let schema = TableSchema::default().merge("t", &b.schema()).unwrap();
        let days = sorted_runs_by_day(&schema, &[b]).unwrap();
        assert_eq!(days.len(), 2);
        assert_eq!(days[0].day, NaiveDate::from_ymd_opt(1970, 1, 1).unwrap());
        assert_eq!(days[1].day, NaiveDate::from_ymd_opt(1970, 1, 2).unwrap());
        let run = |d: usize| days[d].runs[0].slice(0, 10).unwrap();
        assert_eq!(hosts_of(&run(0)), ["a", "b"]);
        assert_eq!(hosts_of(&run(1)), ["a", "b"]);
    }

    #[test]
    fn large_buffers_are_sorted_in_bounded_chunks_and_small_writes_joined() {
        let n = SORT_CHUNK_ROWS + 10;
        let big = batch(
            (0..n).map(|i| if i % 2 == 0 { "b" } else { "a" }).collect(),
            (0..n as i64).rev().collect(),
        );
        let small: Vec<RecordBatch> = (0..5).map(|i| batch(vec!["c"], vec![i])).collect();
        let schema = TableSchema::default().merge("t", &big.schema()).unwrap();
        let mut all = vec![big];
        all.extend(small);
        let days = sorted_runs_by_day(&schema, &all).unwrap();
        let runs = &days[0].runs;
        assert_eq!(
            runs.len(),
            2,
            "one full chunk, then the rest with the small writes"
        );
        assert_eq!(runs[0].rows(), SORT_CHUNK_ROWS);
        assert_eq!(runs[1].rows(), 15);
        for run in runs {
            let run = &run.slice(0, run.rows()).unwrap();
            let keys: Vec<(String, i64)> = hosts_of(run)
                .into_iter()
                .zip(time_column(run).unwrap().values().iter().copied())
                .collect();
            assert!(keys.windows(2).all(|w| w[0] <= w[1]), "each run is sorted");
        }
    }
}
