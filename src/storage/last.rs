//! The last-value cache: the newest row of every series (one combination of tag values) of a
//! table, kept as rows are written, so "the newest row of each host" is answered without a
//! scan. Entries point into the written batches until the next flush compacts them into one
//! batch of their own, so the cache never keeps a flushed buffer alive. After a restart the WAL
//! replay refills it with the unflushed rows, and the first reader reads the table's files
//! once for the series only they hold. An older (late) row never replaces a newer one; on
//! equal times the later write wins.

use std::collections::HashMap;

use arrow::array::{Array, RecordBatch};
use arrow::compute::interleave_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};

use super::StorageError;
use super::schema::{TableSchema, align_batch, time_column};

/// Batches the entries may point into before they are compacted into one.
const MAX_BATCHES: usize = 16;

/// A series' newest row: its time, and the batch and row holding it.
type Newest = (i64, u32, u32);

#[derive(Debug, Default)]
pub struct LastRows {
    /// The tags the keys were made of; a table that gains a tag is re-keyed.
    tags: Vec<String>,
    schema: Option<SchemaRef>,
    /// Batches the entries point into, aligned to `schema`.
    batches: Vec<RecordBatch>,
    /// Series key (the tag values in the row format) → where its newest row is.
    series: HashMap<Box<[u8]>, Newest>,
    /// Whether the table's files have been read in since start.
    pub files_loaded: bool,
    /// Offers that changed an entry, and how many of them the last snapshot held (see
    /// `last_snapshot`).
    pub changes: u64,
    pub saved_changes: u64,
}

impl LastRows {
    /// Offers every row of `batch` (any older schema of the table); each series keeps its
    /// newest. `arrow_schema` is `schema` as Arrow.
    pub fn offer(
        &mut self,
        schema: &TableSchema,
        arrow_schema: &SchemaRef,
        batch: &RecordBatch,
    ) -> Result<(), StorageError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let grown = self
            .schema
            .as_ref()
            .is_none_or(|s| s.fields() != arrow_schema.fields());
        if grown {
            self.rekey(schema, arrow_schema)?;
        } else if self.batches.len() >= MAX_BATCHES {
            self.compact()?;
        }
        let batch = align_batch(batch, arrow_schema)?;
        let keys = self.keys(&batch)?;
        let times = time_column(&batch)?;
        let index = self.batches.len() as u32;
        let mut kept = false;
        for row in 0..batch.num_rows() {
            let time = times.value(row);
            let key = keys.get(row);
            match self.series.get_mut(key) {
                Some(entry) if entry.0 > time => {}
                Some(entry) => {
                    *entry = (time, index, row as u32);
                    kept = true;
                }
                None => {
                    self.series.insert(key.into(), (time, index, row as u32));
                    kept = true;
                }
            }
        }
        if kept {
            self.batches.push(batch);
            self.changes += 1;
        }
        Ok(())
    }

    /// The newest row of every series, one batch in the table's current schema.
    pub fn rows(&mut self) -> Result<Option<RecordBatch>, StorageError> {
        self.compact()?;
        Ok(self.batches.first().cloned())
    }

    /// Copies the entries' rows into one batch and drops the batches they pointed into.
    pub fn compact(&mut self) -> Result<(), StorageError> {
        if self.batches.len() <= 1 && self.batch_is_compact() {
            return Ok(());
        }
        let Some(schema) = self.schema.clone() else {
            return Ok(());
        };
        let mut entries: Vec<(&Box<[u8]>, &mut Newest)> = self.series.iter_mut().collect();
        // Series order, so the batch reads like a sorted file.
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let indices: Vec<(usize, usize)> = entries
            .iter()
            .map(|(_, e)| (e.1 as usize, e.2 as usize))
            .collect();
        let batches: Vec<&RecordBatch> = self.batches.iter().collect();
        let compact = if indices.is_empty() {
            RecordBatch::new_empty(schema)
        } else {
            interleave_record_batch(&batches, &indices)?
        };
        for (row, (_, entry)) in entries.into_iter().enumerate() {
            entry.1 = 0;
            entry.2 = row as u32;
        }
        self.batches = vec![compact];
        Ok(())
    }

    fn batch_is_compact(&self) -> bool {
        self.batches
            .first()
            .is_none_or(|b| b.num_rows() == self.series.len())
    }

    /// A grown schema: every kept row is aligned to it and re-keyed (a new tag is part of
    /// the series key from now on, null for the rows written before it).
    fn rekey(
        &mut self,
        schema: &TableSchema,
        arrow_schema: &SchemaRef,
    ) -> Result<(), StorageError> {
        self.compact()?;
        let old = self.batches.pop();
        self.series.clear();
        self.tags = schema.tags().map(str::to_string).collect();
        self.schema = Some(arrow_schema.clone());
        if let Some(old) = old {
            self.offer(schema, arrow_schema, &old)?;
        }
        Ok(())
    }

    fn keys(&self, batch: &RecordBatch) -> Result<Keys, StorageError> {
        let columns: Vec<_> = self
            .tags
            .iter()
            .filter_map(|t| batch.column_by_name(t).cloned())
            .collect();
        if columns.is_empty() {
            return Ok(Keys::OneSeries);
        }
        let fields = columns
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect();
        Ok(Keys::Rows(
            RowConverter::new(fields)?.convert_columns(&columns)?,
        ))
    }
}

/// The series keys of a batch's rows.
enum Keys {
    Rows(arrow::row::Rows),
    /// A table without tags is one series.
    OneSeries,
}

impl Keys {
    fn get(&self, row: usize) -> &[u8] {
        match self {
            Keys::Rows(rows) => rows.row(row).data(),
            Keys::OneSeries => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::schema::{tag_type, time_type};
    use arrow::array::{DictionaryArray, Float64Array, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Int32Type, Schema};
    use std::sync::Arc;

    fn batch(tags: &[(&str, Vec<&str>)], times: Vec<i64>) -> RecordBatch {
        let mut fields = vec![Field::new("time", time_type(), false)];
        let mut columns: Vec<arrow::array::ArrayRef> = vec![Arc::new(
            TimestampNanosecondArray::from(times.clone()).with_timezone("UTC"),
        )];
        for (name, values) in tags {
            fields.push(Field::new(*name, tag_type(), true));
            columns.push(Arc::new(
                values
                    .iter()
                    .copied()
                    .collect::<DictionaryArray<Int32Type>>(),
            ));
        }
        fields.push(Field::new("v", DataType::Float64, true));
        columns.push(Arc::new(Float64Array::from(
            times.iter().map(|t| *t as f64).collect::<Vec<_>>(),
        )));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    fn offer(last: &mut LastRows, schema: &mut TableSchema, b: &RecordBatch) {
        *schema = schema.merge("t", &b.schema()).unwrap();
        last.offer(schema, &schema.arrow_schema(), b).unwrap();
    }

    fn values(last: &mut LastRows) -> Vec<f64> {
        let rows = last.rows().unwrap().unwrap();
        let v = rows.column_by_name("v").unwrap();
        let v = v.as_any().downcast_ref::<Float64Array>().unwrap();
        v.values().to_vec()
    }

    #[test]
    fn each_series_keeps_its_newest_row_and_a_new_tag_makes_new_series() {
        let (mut last, mut schema) = (LastRows::default(), TableSchema::default());
        offer(
            &mut last,
            &mut schema,
            &batch(&[("host", vec!["a", "b", "a"])], vec![5, 1, 3]),
        );
        offer(
            &mut last,
            &mut schema,
            &batch(&[("host", vec!["b", "a"])], vec![2, 4]),
        );
        assert_eq!(values(&mut last), [5.0, 2.0], "a keeps 5 over the late 4");
        // Equal time: the later write wins.
        offer(
            &mut last,
            &mut schema,
            &batch(&[("host", vec!["b"])], vec![2]),
        );
        assert_eq!(last.series.len(), 2);
        // A new tag column: old rows are re-keyed with it null, (a, r1) is a series of its own.
        offer(
            &mut last,
            &mut schema,
            &batch(&[("host", vec!["a"]), ("rack", vec!["r1"])], vec![9]),
        );
        assert_eq!(values(&mut last), [5.0, 9.0, 2.0]);
        offer(
            &mut last,
            &mut schema,
            &batch(&[("host", vec!["a"])], vec![7]),
        );
        assert_eq!(values(&mut last), [7.0, 9.0, 2.0], "(a, null) moved on");
        assert_eq!(last.batches.len(), 1, "compacted for reading");
    }

    #[test]
    fn a_table_without_tags_is_one_series() {
        let (mut last, mut schema) = (LastRows::default(), TableSchema::default());
        offer(&mut last, &mut schema, &batch(&[], vec![3, 8, 1]));
        assert_eq!(values(&mut last), [8.0]);
    }
}
