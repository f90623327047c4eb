//! A line-protocol body → one checked write per measurement. Measurements become tables (name
//! lower-cased, every character outside `a-z 0-9 _` turned into `_`, `m_` put before a name
//! that does not start with a letter), tags tag columns, fields typed columns. Nothing is
//! written unless every line parses and fits its table: a bad line or a type conflict fails the
//! whole body with the line numbers — unless the caller accepts a partial write.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::line_protocol::{FieldValue, Point, parse};
use super::{IngestError, Limits, LineError, MAX_DETAILS, Precision, Validated, Value, Write};
use crate::storage::{ColumnKind, FieldType, TIME_COLUMN, TableSchema, TenantStore};

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

/// Checked writes, and (with `accept_partial`) the lines left out with why.
pub type LineWrites = (Vec<Validated>, Vec<(usize, String)>);

/// Parses and checks `body`; `now_ns` stamps points without a timestamp. Without
/// `accept_partial` any bad line fails the whole body; with it, lines that do not parse or
/// whose values contradict their column's type are left out and returned, the rest written.
pub fn decode_lines(
    tenant: &Arc<TenantStore>,
    body: &[u8],
    precision: Precision,
    limits: Limits,
    now_ns: i64,
    accept_partial: bool,
) -> Result<LineWrites, IngestError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        let line = body[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        invalid(vec![(line, "the line is not valid UTF-8".to_string())])
    })?;
    let (points, mut refused) = parse(text);
    if !refused.is_empty() && !accept_partial {
        return Err(invalid(refused));
    }
    let mut by_table: BTreeMap<String, Vec<(usize, Point<'_>)>> = BTreeMap::new();
    for (line, point) in points {
        by_table
            .entry(table_name(&point.measurement))
            .or_default()
            .push((line, point));
    }
    if accept_partial {
        for (table, points) in by_table.iter_mut() {
            let known = tenant.schema_for_write(table);
            let mut seen = HashMap::new();
            points.retain(|(line, point)| match conflict(&known, &mut seen, point) {
                Some(why) => {
                    refused.push((*line, why));
                    false
                }
                None => true,
            });
        }
        by_table.retain(|_, points| !points.is_empty());
        refused.sort();
    }
    if by_table.is_empty() {
        return Err(if refused.is_empty() {
            IngestError::Empty
        } else {
            invalid(refused)
        });
    }
    let unit = precision.epoch_to_nanos(1).unwrap_or(1).max(1);
    let now = now_ns / unit;
    let mut checked = Vec::with_capacity(by_table.len());
    for (table, points) in by_table {
        let mut write = Write::to(tenant.clone(), &table, limits)?.limit_series();
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
    Ok((checked, refused))
}

/// Why `point` cannot go into its table: a column whose type (stored, or given by an earlier
/// line of the body, kept in `seen`) differs from this line's.
fn conflict(
    known: &TableSchema,
    seen: &mut HashMap<String, ColumnKind>,
    point: &Point<'_>,
) -> Option<String> {
    let tags = point
        .tags
        .iter()
        .map(|(k, _)| (k.as_ref(), ColumnKind::Tag));
    let fields = point.fields.iter().map(|(k, v)| (k.as_ref(), typed(v).0));
    let columns: Vec<(&str, ColumnKind)> = tags.chain(fields).collect();
    for &(name, kind) in &columns {
        if name == TIME_COLUMN {
            return Some(
                "`time` is the point's timestamp; a tag or field cannot use the name".into(),
            );
        }
        if let Some(have) = known.kind_of(name).or_else(|| seen.get(name).copied())
            && have != kind
        {
            return Some(format!(
                "column {name:?} holds {}, this line gives {}",
                have.describe(),
                kind.describe()
            ));
        }
    }
    for (name, kind) in columns {
        seen.entry(name.to_string()).or_insert(kind);
    }
    None
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
