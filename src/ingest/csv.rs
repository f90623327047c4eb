//! CSV bodies: a header row names the columns, `time` among them. Text is parsed by the
//! column's kind; a new column takes its kind from its first non-empty value (a number → float
//! field, true/false → boolean field, anything else → tag). Empty cells are nulls.

use std::borrow::Cow;

use super::builder::{BatchBuilder, Value};
use crate::storage::{ColumnKind, FieldType, TIME_COLUMN};

pub fn decode(body: &[u8], builder: &mut BatchBuilder) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(body);
    let headers = match reader.headers() {
        Ok(h) => h.iter().map(|h| h.trim().to_string()).collect::<Vec<_>>(),
        Err(e) => return builder.error_at(1, None, format!("invalid CSV header: {e}")),
    };
    if !headers.iter().any(|h| h == TIME_COLUMN) {
        return builder.error_at(1, Some(TIME_COLUMN), "the header has no `time` column");
    }
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() as usize;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                builder.error_at(line.max(2), None, format!("invalid CSV: {e}"));
                break;
            }
        }
        let line = record.position().map(|p| p.line() as usize).unwrap_or(line);
        if record.len() == 1 && record.get(0).is_some_and(|c| c.trim().is_empty()) {
            continue;
        }
        builder.begin_row(line);
        if record.len() != headers.len() {
            builder.error(
                None,
                format!(
                    "row has {} fields, the header has {}",
                    record.len(),
                    headers.len()
                ),
            );
            builder.end_row_after_error();
            continue;
        }
        for (name, text) in headers.iter().zip(record.iter()) {
            let value = parse_cell(builder.kind_of(name), name, text);
            match value {
                Ok(v) => builder.set(name, v),
                Err(message) => builder.error(Some(name), message),
            }
        }
        builder.end_row();
    }
}

fn parse_cell<'a>(
    kind: Option<ColumnKind>,
    name: &str,
    text: &'a str,
) -> Result<Value<'a>, String> {
    if text.is_empty() {
        return Ok(Value::Null);
    }
    let number = |t: &str| -> Result<Value<'a>, String> {
        t.trim()
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| format!("column {name:?}: expected a number, got {t:?}"))
    };
    if name == TIME_COLUMN {
        return Ok(match text.trim().parse::<i64>() {
            Ok(v) => Value::Int(v),
            Err(_) => Value::Str(Cow::Borrowed(text)),
        });
    }
    match kind {
        Some(ColumnKind::Tag)
        | Some(ColumnKind::Time)
        | Some(ColumnKind::Field(FieldType::String)) => Ok(Value::Str(Cow::Borrowed(text))),
        Some(ColumnKind::Field(FieldType::Float)) => number(text),
        Some(ColumnKind::Field(FieldType::Integer)) => text
            .trim()
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| format!("column {name:?}: expected an integer, got {text:?}")),
        Some(ColumnKind::Field(FieldType::UInteger)) => text
            .trim()
            .parse::<u64>()
            .map(Value::UInt)
            .map_err(|_| format!("column {name:?}: expected an unsigned integer, got {text:?}")),
        Some(ColumnKind::Field(FieldType::Boolean)) => parse_bool(text)
            .map(Value::Bool)
            .ok_or_else(|| format!("column {name:?}: expected true or false, got {text:?}")),
        None => Ok(if let Some(b) = parse_bool(text) {
            Value::Bool(b)
        } else if let Ok(v) = number(text) {
            v
        } else {
            Value::Str(Cow::Borrowed(text))
        }),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "true" | "TRUE" | "True" => Some(true),
        "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}
