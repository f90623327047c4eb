//! OTLP/HTTP (protobuf or its JSON mapping) → one checked write per table. Metrics become one
//! table per metric name (see [`metrics`]), log records rows of one events table (see
//! [`logs`]). Attribute keys become column names with every character outside
//! `A-Z a-z 0-9 _` turned into `_` (`service.name` → `service_name`); a key that would take a
//! column the mapping itself fills (`value`, `count`, `severity`, …) gets `attr_` before it.
//! Resource attributes and the point's own share the row; the point's win a clash. Points the
//! mapping cannot store are counted and named in OTLP's `partial_success`; a value that
//! contradicts a stored column's type fails the whole request (nothing written), as for every
//! other write.

pub mod logs;
pub mod metrics;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use serde::de::DeserializeOwned;

use super::{IngestError, Limits, Precision, Validated, Value, Write};
use crate::schema::SYSTEM_TABLES;
use crate::storage::{ColumnKind, TIME_COLUMN, TenantStore};

/// How the request body (and so the answer) is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// From the request's `Content-Type`; `None` for a type OTLP/HTTP does not define.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Self::Protobuf),
            "application/json" => Some(Self::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }

    fn decode<T: Message + Default + DeserializeOwned>(
        self,
        body: &[u8],
    ) -> Result<T, IngestError> {
        match self {
            Self::Protobuf => T::decode(body).map_err(|e| {
                IngestError::Malformed(format!("the body is not an OTLP protobuf request: {e}"))
            }),
            Self::Json => serde_json::from_slice(body).map_err(|e| {
                IngestError::Malformed(format!(
                    "the body is not an OTLP JSON request (line {}, column {}): {e}",
                    e.line(),
                    e.column()
                ))
            }),
        }
    }
}

/// Data points (or log records) the mapping left out, and why (the first reason).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rejected {
    pub count: i64,
    pub message: String,
}

impl Rejected {
    fn add(&mut self, count: usize, why: impl FnOnce() -> String) {
        if count == 0 {
            return;
        }
        if self.message.is_empty() {
            self.message = why();
        }
        self.count += count as i64;
    }
}

/// One cell: column, kind, value — borrowed from the request where nothing had to change.
type Cell<'a> = (Cow<'a, str>, ColumnKind, Value<'a>);

/// A tag column and its text.
type Tag<'a> = (Cow<'a, str>, Cow<'a, str>);

/// One row of one table before it meets the table's builder.
#[derive(Debug, Clone, Default)]
struct Row<'a> {
    time: i64,
    cells: Vec<Cell<'a>>,
}

/// Rows by table, in the order they were read.
#[derive(Default)]
struct Tables<'a>(BTreeMap<String, Vec<Row<'a>>>);

impl<'a> Tables<'a> {
    fn push(&mut self, table: &str, row: Row<'a>) {
        match self.0.get_mut(table) {
            Some(rows) => rows.push(row),
            None => {
                self.0.insert(table.to_string(), vec![row]);
            }
        }
    }

    /// Metrics whose name maps to a table the server writes itself (`alerts`) are left out and
    /// counted: an SDK exports all its metrics in every request, and one unlucky name must not
    /// refuse the others for good (OTLP clients do not retry a 4xx).
    fn leave_out_system_tables(&mut self, rejected: &mut Rejected) {
        for table in SYSTEM_TABLES {
            if let Some(rows) = self.0.remove(table) {
                rejected.add(rows.len(), || {
                    format!("metric `{table}` maps to a table the server writes itself; rename it")
                });
            }
        }
    }

    fn points(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    /// Every table checked against its schema; nothing is written here.
    fn into_writes(
        self,
        tenant: &Arc<TenantStore>,
        limits: Limits,
        limit_series: bool,
    ) -> Result<Vec<Validated>, IngestError> {
        let mut checked = Vec::with_capacity(self.0.len());
        let mut ordinal = 0;
        for (table, rows) in self.0 {
            let mut write = Write::to(tenant.clone(), &table, limits)?;
            if limit_series {
                write = write.limit_series();
            }
            write.rows(Precision::Nanoseconds, |builder| {
                for row in rows {
                    ordinal += 1;
                    builder.begin_row(ordinal);
                    for (name, kind, value) in row.cells {
                        builder.set_typed(&name, kind, value);
                    }
                    builder.set(TIME_COLUMN, Value::Int(row.time));
                    builder.end_row();
                }
            })?;
            checked.push(write.validated());
        }
        Ok(checked)
    }
}

/// The column an attribute key is stored in; `reserved` names the mapping's own columns.
fn column_name<'a>(key: &'a str, reserved: &[&str]) -> Cow<'a, str> {
    let clean = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let mut name: Cow<'a, str> = if clean {
        Cow::Borrowed(key)
    } else if key.is_empty() {
        Cow::Borrowed("_")
    } else {
        let sanitised = key
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' });
        Cow::Owned(sanitised.collect())
    };
    if name == TIME_COLUMN || reserved.contains(&name.as_ref()) {
        name = Cow::Owned(format!("attr_{name}"));
    }
    name
}

/// Attributes as (column, text) tag cells, later keys replacing earlier ones of the same column.
fn attribute_tags<'a>(into: &mut Vec<Tag<'a>>, attributes: &'a [KeyValue], reserved: &[&str]) {
    for attribute in attributes {
        let column = column_name(&attribute.key, reserved);
        let text = attribute.value.as_ref().map(text).unwrap_or_default();
        match into.iter_mut().find(|(name, _)| *name == column) {
            Some(cell) => cell.1 = text,
            None => into.push((column, text)),
        }
    }
}

/// The tags as cells, with room for `extra` more.
fn tag_cells<'a>(tags: &[Tag<'a>], extra: usize) -> Vec<Cell<'a>> {
    let mut cells = Vec::with_capacity(tags.len() + extra);
    for (name, text) in tags {
        cells.push((name.clone(), ColumnKind::Tag, Value::Str(text.clone())));
    }
    cells
}

/// An attribute or log body as text: strings as they are, other scalars as written in JSON,
/// arrays and maps as JSON, bytes as base64.
fn text(value: &AnyValue) -> Cow<'_, str> {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => Cow::Borrowed(s),
        Some(any_value::Value::BytesValue(b)) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(b).into()
        }
        Some(any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_)) => {
            json(value).to_string().into()
        }
        _ => match json(value) {
            serde_json::Value::Null => Cow::Borrowed(""),
            other => other.to_string().into(),
        },
    }
}

fn json(value: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match &value.value {
        None | Some(any_value::Value::StringValueStrindex(_)) => J::Null,
        Some(any_value::Value::StringValue(s)) => J::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => J::Bool(*b),
        Some(any_value::Value::IntValue(i)) => J::from(*i),
        Some(any_value::Value::DoubleValue(d)) => J::from(*d),
        Some(any_value::Value::BytesValue(_)) => J::String(text(value).into_owned()),
        Some(any_value::Value::ArrayValue(a)) => J::Array(a.values.iter().map(json).collect()),
        Some(any_value::Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|e| (e.key.clone(), e.value.as_ref().map(json).unwrap_or(J::Null)))
                .collect(),
        ),
    }
}

/// A nanosecond time from OTLP's unsigned field; 0 (unset) is `now`.
fn nanos(time_unix_nano: u64, now_ns: i64) -> Option<i64> {
    match time_unix_nano {
        0 => Some(now_ns),
        t => i64::try_from(t).ok(),
    }
}

/// The answer to a metrics export: empty, or the partial success OTLP defines.
pub fn metrics_response(rejected: &Rejected, encoding: Encoding) -> Vec<u8> {
    let response = ExportMetricsServiceResponse {
        partial_success: (rejected.count > 0).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: rejected.count,
            error_message: rejected.message.clone(),
        }),
    };
    encode(&response, encoding)
}

/// The answer to a logs export.
pub fn logs_response(rejected: &Rejected, encoding: Encoding) -> Vec<u8> {
    let response = ExportLogsServiceResponse {
        partial_success: (rejected.count > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: rejected.count,
            error_message: rejected.message.clone(),
        }),
    };
    encode(&response, encoding)
}

/// `google.rpc.Status`, the body OTLP/HTTP gives a refused request.
#[derive(Clone, PartialEq, Message, serde::Serialize)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// A refusal as OTLP clients read it: the gRPC code matching the HTTP status, and the message.
pub fn status_body(http_status: u16, message: &str, encoding: Encoding) -> Vec<u8> {
    let code = match http_status {
        400 | 413 | 415 | 422 => 3, // INVALID_ARGUMENT
        401 => 16,                  // UNAUTHENTICATED
        403 => 7,                   // PERMISSION_DENIED
        404 => 5,                   // NOT_FOUND
        429 => 8,                   // RESOURCE_EXHAUSTED
        502..=504 => 14,            // UNAVAILABLE
        _ => 13,                    // INTERNAL
    };
    let status = Status {
        code,
        message: message.to_string(),
    };
    encode(&status, encoding)
}

fn encode<T: Message + serde::Serialize>(message: &T, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => message.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(message).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn attribute_keys_become_column_names() {
        assert_eq!(column_name("service.name", &[]), "service_name");
        assert_eq!(
            column_name("http.response.status-code", &[]),
            "http_response_status_code"
        );
        assert_eq!(column_name("value", &["value"]), "attr_value");
        assert_eq!(column_name("time", &[]), "attr_time");
        assert_eq!(column_name("", &[]), "_");
        assert_eq!(column_name("größe", &[]), "gr__e");
    }

    #[test]
    fn later_attributes_replace_earlier_ones_and_values_become_text() {
        use any_value::Value as V;
        let resource = [kv("host.name", V::StringValue("a".into()))];
        let point = [
            kv("host.name", V::StringValue("b".into())),
            kv("port", V::IntValue(8080)),
            kv("up", V::BoolValue(true)),
            kv("ratio", V::DoubleValue(0.5)),
            kv("raw", V::BytesValue(vec![0, 255])),
        ];
        let mut tags = vec![];
        attribute_tags(&mut tags, &resource, &[]);
        attribute_tags(&mut tags, &point, &[]);
        let expected = [
            ("host_name", "b"),
            ("port", "8080"),
            ("up", "true"),
            ("ratio", "0.5"),
            ("raw", "AP8="),
        ];
        let got: Vec<(&str, &str)> = tags.iter().map(|(a, b)| (a.as_ref(), b.as_ref())).collect();
        assert_eq!(got, expected);
        let list = AnyValue {
            value: Some(V::KvlistValue(
                opentelemetry_proto::tonic::common::v1::KeyValueList {
                    values: vec![kv(
                        "a",
                        V::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                            values: vec![AnyValue {
                                value: Some(V::IntValue(1)),
                            }],
                        }),
                    )],
                },
            )),
        };
        assert_eq!(text(&list), r#"{"a":[1]}"#);
    }

    #[test]
    fn content_types_and_refusals_follow_otlp_http() {
        assert_eq!(
            Encoding::from_content_type("application/x-protobuf"),
            Some(Encoding::Protobuf)
        );
        assert_eq!(
            Encoding::from_content_type("Application/JSON; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::from_content_type("text/plain"), None);
        let body = status_body(400, "bad", Encoding::Json);
        assert_eq!(body, br#"{"code":3,"message":"bad"}"#);
        let decoded =
            Status::decode(status_body(429, "full", Encoding::Protobuf).as_slice()).unwrap();
        assert_eq!((decoded.code, decoded.message.as_str()), (8, "full"));
        assert_eq!(nanos(0, 7), Some(7));
        assert_eq!(nanos(u64::MAX, 7), None);
    }
}
