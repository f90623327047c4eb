//! Reading result columns by name into plain Rust values, whatever Arrow type the query gave
//! (dictionary tags, integers, floats, timestamps in any unit).

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use arrow::record_batch::RecordBatch;
use serde_json::{Value, json};

/// `2024-01-01T00:00:00Z` (with sub-seconds only when present).
pub fn rfc3339(ns: i64) -> String {
    crate::clock::Timestamp::from_ns(ns).rfc3339()
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a ArrayRef> {
    batch.schema().index_of(name).ok().map(|i| batch.column(i))
}

pub fn has_column(batches: &[RecordBatch], name: &str) -> bool {
    batches
        .first()
        .is_some_and(|b| b.schema().index_of(name).is_ok())
}

/// Values of `name` as f64 over all batches; None when the column is absent or not numeric.
pub fn floats(batches: &[RecordBatch], name: &str) -> Option<Vec<Option<f64>>> {
    let mut out = vec![];
    for batch in batches {
        let array = cast(column(batch, name)?, &DataType::Float64).ok()?;
        out.extend(array.as_primitive::<Float64Type>().iter());
    }
    Some(out)
}

/// Values of timestamp column `name` as epoch nanoseconds.
pub fn timestamps_ns(batches: &[RecordBatch], name: &str) -> Option<Vec<Option<i64>>> {
    let mut out = vec![];
    for batch in batches {
        let array = column(batch, name)?;
        if !matches!(array.data_type(), DataType::Timestamp(..)) {
            return None;
        }
        let ns = cast(array, &DataType::Timestamp(TimeUnit::Nanosecond, None)).ok()?;
        let ints = cast(&ns, &DataType::Int64).ok()?;
        out.extend(ints.as_primitive::<Int64Type>().iter());
    }
    Some(out)
}

/// Values of `name` as text; integral floats print without `.0` (status codes).
pub fn texts(batches: &[RecordBatch], name: &str) -> Option<Vec<Option<String>>> {
    let mut out = vec![];
    for batch in batches {
        let array = column(batch, name)?;
        for row in 0..array.len() {
            out.push(text_cell(array, row));
        }
    }
    Some(out)
}

fn text_cell(array: &ArrayRef, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    match json_cell(array, row) {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        }),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// One cell as JSON: numbers, text, booleans, timestamps as RFC 3339, null.
pub fn json_cell(array: &ArrayRef, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    let single = array.slice(row, 1);
    match array.data_type() {
        DataType::Timestamp(..) => {
            let ns = cast(&single, &DataType::Timestamp(TimeUnit::Nanosecond, None))
                .and_then(|a| cast(&a, &DataType::Int64));
            match ns {
                Ok(a) => json!(rfc3339(a.as_primitive::<Int64Type>().value(0))),
                Err(_) => Value::Null,
            }
        }
        DataType::Boolean => json!(single.as_boolean().value(0)),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            match cast(&single, &DataType::Int64) {
                Ok(a) => json!(a.as_primitive::<Int64Type>().value(0)),
                Err(_) => Value::Null,
            }
        }
        d if d.is_numeric() => match cast(&single, &DataType::Float64) {
            Ok(a) => {
                let v = a.as_primitive::<Float64Type>().value(0);
                serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
            }
            Err(_) => Value::Null,
        },
        _ => match cast(&single, &DataType::Utf8) {
            Ok(a) => json!(a.as_string::<i32>().value(0)),
            Err(_) => Value::Null,
        },
    }
}

/// Column names of the result.
pub fn column_names(batches: &[RecordBatch]) -> Vec<String> {
    batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Rows as JSON arrays, in column order.
pub fn json_rows(batches: &[RecordBatch]) -> Vec<Vec<Value>> {
    let mut rows = vec![];
    for batch in batches {
        for row in 0..batch.num_rows() {
            rows.push(batch.columns().iter().map(|c| json_cell(c, row)).collect());
        }
    }
    rows
}

/// A finite f64 as JSON, else null (NaN and infinities have no JSON form).
pub fn number(v: Option<f64>) -> Value {
    v.and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}
