//! Arrow batches from files (Parquet for the `ingest` CLI) → the table's column types:
//! timestamps of any unit become nanoseconds UTC, strings become tags unless the table has them
//! as string fields, integers widen to i64/u64, floats to f64.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::{IngestError, LineError};
use crate::storage::{ColumnKind, FieldType, TIME_COLUMN, TableSchema, tag_type, time_type};

pub fn normalize(batch: &RecordBatch, known: &TableSchema) -> Result<RecordBatch, IngestError> {
    let mut fields = vec![];
    let mut columns: Vec<ArrayRef> = vec![];
    let problem = |column: &str, message: String| IngestError::InvalidLines {
        details: vec![LineError {
            line: 1,
            column: Some(column.to_string()),
            message,
        }],
        total: 1,
    };
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let name = field.name().as_str();
        let target = if name == TIME_COLUMN {
            match field.data_type() {
                DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => time_type(),
                DataType::Int64 => {
                    // Integer epochs in Parquet are taken as nanoseconds, like Arrow's own default.
                    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
                }
                other => {
                    return Err(problem(
                        name,
                        format!("`time` must be a timestamp, got {other}"),
                    ));
                }
            }
        } else {
            match (known.kind_of(name), field.data_type()) {
                (Some(kind), _) => kind.data_type(),
                (
                    None,
                    DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Dictionary(_, _),
                ) => tag_type(),
                (None, DataType::Boolean) => ColumnKind::Field(FieldType::Boolean).data_type(),
                (None, DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64) => {
                    DataType::Int64
                }
                (
                    None,
                    DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64,
                ) => DataType::UInt64,
                (
                    None,
                    DataType::Float16
                    | DataType::Float32
                    | DataType::Float64
                    | DataType::Decimal128(_, _),
                ) => DataType::Float64,
                (None, other) => {
                    return Err(problem(
                        name,
                        format!("column type {other} is not supported"),
                    ));
                }
            }
        };
        let converted = if column.data_type() == &target {
            column.clone()
        } else {
            cast(column, &target)
                .map_err(|e| problem(name, format!("cannot convert to {target}: {e}")))?
        };
        fields.push(Field::new(name, target, name != TIME_COLUMN));
        columns.push(converted);
    }
    if !fields.iter().any(|f| f.name() == TIME_COLUMN) {
        return Err(problem(TIME_COLUMN, "the file has no `time` column".into()));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
