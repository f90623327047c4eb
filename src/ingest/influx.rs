//! A line-protocol body → one checked write per measurement. Measurements become tables (name
//! lower-cased, every character outside `a-z 0-9 _` turned into `_`, `m_` put before a name
//! that does not start with a letter), tags tag columns, fields typed columns. Nothing is
//! written unless every line parses and fits its table: a bad line or a type conflict fails the
//! whole body with the line numbers.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::line_protocol::{FieldValue, Point, parse};
use super::{IngestError, Limits, LineError, MAX_DETAILS, Precision, Validated, Value, Write};
use crate::storage::{ColumnKind, FieldType, TIME_COLUMN, TenantStore};

/// The table a measurement is stored in.
pub fn table_name(measurement: &str) -> String {
    let mut name: String = measurement
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "m_");
    }
    name.truncate(128);
    name
}

/// Parses and checks `body`; `now_ns` stamps points without a timestamp.
pub fn decode_lines(
    tenant: &Arc<TenantStore>,
    body: &[u8],
    precision: Precision,
    limits: Limits,
    now_ns: i64,
) -> Result<Vec<Validated>, IngestError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        let line = body[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        invalid(vec![(line, "the line is not valid UTF-8".to_string())])
    })?;
    let (points, errors) = parse(text);
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    if points.is_empty() {
        return Err(IngestError::Empty);
    }
    let mut by_table: BTreeMap<String, Vec<(usize, Point<'_>)>> = BTreeMap::new();
    for (line, point) in points {
        by_table
            .entry(table_name(&point.measurement))
            .or_default()
            .push((line, point));
    }
    let unit = precision.epoch_to_nanos(1).unwrap_or(1).max(1);
    let now = now_ns / unit;
    let mut checked = Vec::with_capacity(by_table.len());
    for (table, points) in by_table {
        let mut write = Write::to(tenant.clone(), &table, limits)?;
        write.rows(precision, |builder| {
            for (line, point) in &points {
                builder.begin_row(*line);
                for (key, value) in &point.tags {
                    set(builder, key, ColumnKind::Tag, Value::Str(value.clone()));
                }
                for (key, value) in &point.fields {
                    let (kind, value) = typed(value);
                    set(builder, key, kind, value);
                }
                builder.set(TIME_COLUMN, Value::Int(point.timestamp.unwrap_or(now)));
                builder.end_row();
            }
        })?;
        checked.push(write.validated());
    }
    Ok(checked)
}

fn set(builder: &mut super::BatchBuilder, key: &str, kind: ColumnKind, value: Value<'_>) {
    if key == TIME_COLUMN {
        return builder.error(
            Some(key),
            "`time` is the point's timestamp; a tag or field cannot use the name",
        );
    }
    builder.set_typed(key, kind, value);
}

fn typed<'a>(value: &FieldValue<'a>) -> (ColumnKind, Value<'a>) {
    match value {
        FieldValue::Float(v) => (ColumnKind::Field(FieldType::Float), Value::Float(*v)),
        FieldValue::Int(v) => (ColumnKind::Field(FieldType::Integer), Value::Int(*v)),
        FieldValue::UInt(v) => (ColumnKind::Field(FieldType::UInteger), Value::UInt(*v)),
        FieldValue::Bool(v) => (ColumnKind::Field(FieldType::Boolean), Value::Bool(*v)),
        FieldValue::Str(v) => (ColumnKind::Field(FieldType::String), Value::Str(v.clone())),
    }
}

fn invalid(errors: Vec<(usize, String)>) -> IngestError {
    let total = errors.len();
    IngestError::InvalidLines {
        details: errors
            .into_iter()
            .take(MAX_DETAILS)
            .map(|(line, message)| LineError {
                line,
                column: None,
                message,
            })
            .collect(),
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurements_become_valid_table_names() {
        assert_eq!(table_name("cpu"), "cpu");
        assert_eq!(table_name("HTTP.Requests-total"), "http_requests_total");
        assert_eq!(table_name("9lives"), "m_9lives");
        assert_eq!(table_name("_x"), "m__x");
        assert_eq!(table_name(&"a".repeat(300)).len(), 128);
        for name in ["cpu", "HTTP.Requests-total", "9lives", "ünï"] {
            assert!(crate::storage::validate_table_name(&table_name(name)).is_ok());
        }
    }
}
