//! OTLP log records → rows of one events table (`logs` unless the request names another), so
//! table panels and alert rules read them like any other rows: `time` (the record's time, else
//! when it was observed, else now), `severity` (tag: the record's text, else the name of its
//! number: `TRACE` … `FATAL`), `severity_number` (integer), `body` (string; structured bodies
//! as JSON), `trace_id` / `span_id` (hex, when set), `event_name` and `scope_name` (tags, when
//! set), and every resource and record attribute as a tag column.

use std::borrow::Cow;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::{Cell, Encoding, Rejected, Row, Tables, Tag, attribute_tags, nanos, tag_cells, text};
use crate::ingest::{IngestError, Limits, Validated, Value};
use crate::storage::{ColumnKind, FieldType, TenantStore};

const RESERVED: &[&str] = &[
    "severity",
    "severity_number",
    "body",
    "trace_id",
    "span_id",
    "event_name",
    "scope_name",
];

/// Decodes and checks an `ExportLogsServiceRequest` into rows of `table`.
pub fn decode(
    tenant: &Arc<TenantStore>,
    body: &[u8],
    encoding: Encoding,
    table: &str,
    limits: Limits,
    now_ns: i64,
) -> Result<(Vec<Validated>, Rejected), IngestError> {
    let request: ExportLogsServiceRequest = encoding.decode(body)?;
    let mut tables = Tables::default();
    let mut rejected = Rejected::default();
    for resource_logs in &request.resource_logs {
        let mut resource = vec![];
        if let Some(r) = &resource_logs.resource {
            attribute_tags(&mut resource, &r.attributes, RESERVED);
        }
        for scope_logs in &resource_logs.scope_logs {
            let scope = scope_logs
                .scope
                .as_ref()
                .map(|s| s.name.as_str())
                .unwrap_or("");
            for record in &scope_logs.log_records {
                match row(record, &resource, scope, now_ns) {
                    Some(row) => tables.push(table, row),
                    None => rejected.add(1, || "a log record's time is past the year 2262".into()),
                }
            }
        }
    }
    if tables.points() == 0 {
        return Ok((vec![], rejected));
    }
    Ok((tables.into_writes(tenant, limits, false)?, rejected))
}

fn row<'a>(
    record: &'a LogRecord,
    resource: &[Tag<'a>],
    scope: &'a str,
    now_ns: i64,
) -> Option<Row<'a>> {
    let time = match (record.time_unix_nano, record.observed_time_unix_nano) {
        (0, observed) => nanos(observed, now_ns)?,
        (time, _) => nanos(time, now_ns)?,
    };
    let mut tags = resource.to_vec();
    attribute_tags(&mut tags, &record.attributes, RESERVED);
    let severity = if record.severity_text.is_empty() {
        Cow::Borrowed(severity_name(record.severity_number))
    } else {
        Cow::Borrowed(record.severity_text.as_str())
    };
    tags.push(("severity".into(), severity));
    for (name, value) in [
        ("event_name", record.event_name.as_str()),
        ("scope_name", scope),
    ] {
        if !value.is_empty() {
            tags.push((name.into(), value.into()));
        }
    }
    let mut cells = tag_cells(&tags, 4);
    let field = |name: &'static str, kind: FieldType, value: Value<'a>| -> Cell<'a> {
        (name.into(), ColumnKind::Field(kind), value)
    };
    cells.push(field(
        "severity_number",
        FieldType::Integer,
        Value::Int(record.severity_number.into()),
    ));
    if let Some(body) = &record.body {
        cells.push(field("body", FieldType::String, Value::Str(text(body))));
    }
    for (name, id) in [("trace_id", &record.trace_id), ("span_id", &record.span_id)] {
        if !id.is_empty() {
            cells.push(field(name, FieldType::String, Value::Str(hex(id).into())));
        }
    }
    Some(Row { time, cells })
}

/// The short name of a severity number's range, as the OpenTelemetry log data model names it.
fn severity_name(number: i32) -> &'static str {
    match number {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "UNSPECIFIED",
    }
}

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_are_named_from_their_number_when_no_text_is_sent() {
        assert_eq!(severity_name(9), "INFO");
        assert_eq!(severity_name(17), "ERROR");
        assert_eq!(severity_name(0), "UNSPECIFIED");
        let record = LogRecord {
            time_unix_nano: 0,
            observed_time_unix_nano: 5,
            severity_number: 13,
            trace_id: vec![0xab; 16],
            ..Default::default()
        };
        let resource = [("service_name".into(), "api".into())];
        let row = row(&record, &resource, "app", 99).unwrap();
        assert_eq!(row.time, 5);
        let names: Vec<&str> = row.cells.iter().map(|c| c.0.as_ref()).collect();
        assert_eq!(
            names,
            [
                "service_name",
                "severity",
                "scope_name",
                "severity_number",
                "trace_id"
            ]
        );
        assert_eq!(row.cells[1].2, Value::Str("WARN".into()));
    }
}
