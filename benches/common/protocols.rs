//! The TSBS cpu rows as each agent protocol carries them, for the write benches: line protocol
//! (one line per row), Prometheus remote write (one series per row and field, as many samples
//! per request as Prometheus sends by default) and OTLP metrics (one gauge per field).
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opsboard::ingest::prom::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;

/// Prometheus's default `queue_config.max_samples_per_send`.
pub const SAMPLES_PER_SEND: usize = 2_000;

pub struct Row {
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, f64)>,
    pub time_ns: i64,
}

/// Rows of a generator's NDJSON body (strings are tags, numbers fields).
pub fn rows(ndjson: &[u8]) -> Vec<Row> {
    ndjson
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(line).expect("ndjson row");
            let mut row = Row {
                tags: vec![],
                fields: vec![],
                time_ns: 0,
            };
            for (k, v) in map {
                match v {
                    serde_json::Value::String(s) if k == "time" => {
                        row.time_ns = chrono::DateTime::parse_from_rfc3339(&s)
                            .map(|t| t.timestamp_nanos_opt().unwrap_or(0))
                            .unwrap_or(0)
                    }
                    serde_json::Value::Number(n) if k == "time" => {
                        row.time_ns = n.as_i64().unwrap_or(0)
                    }
                    serde_json::Value::String(s) => row.tags.push((k, s)),
                    other => row.fields.push((k, other.as_f64().unwrap_or(0.0))),
                }
            }
            row
        })
        .collect()
}

/// `cpu,<tags> <fields> <time>` per row.
pub fn line_protocol(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        out.push_str("cpu");
        for (k, v) in &row.tags {
            out.push_str(&format!(",{k}={}", v.replace(' ', "\\ ")));
        }
        let fields: Vec<String> = row.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!(" {} {}\n", fields.join(","), row.time_ns));
    }
    out
}

/// Snappy-compressed `WriteRequest`s of [`SAMPLES_PER_SEND`] samples: metric `cpu_<field>`,
/// the row's tags as labels.
pub fn remote_write(rows: &[Row]) -> Vec<Vec<u8>> {
    let mut series = vec![];
    for row in rows {
        for (field, value) in &row.fields {
            let mut labels = vec![Label {
                name: "__name__".into(),
                value: format!("cpu_{field}").into(),
            }];
            labels.extend(row.tags.iter().map(|(k, v)| Label {
                name: k.clone().into(),
                value: v.clone().into(),
            }));
            series.push(TimeSeries {
                labels,
                samples: vec![Sample {
                    value: *value,
                    timestamp: row.time_ns / 1_000_000,
                }],
            });
        }
    }
    series
        .chunks(SAMPLES_PER_SEND)
        .map(|chunk| {
            let request = WriteRequest {
                timeseries: chunk.to_vec(),
            };
            snap::raw::Encoder::new()
                .compress_vec(&request.encode_to_vec())
                .expect("snappy")
        })
        .collect()
}

/// One OTLP request for `rows`: a gauge `cpu.<field>` per field, a point per row with the tags
/// as attributes.
pub fn otlp(rows: &[Row]) -> Vec<u8> {
    let fields: Vec<&String> = rows
        .first()
        .map(|r| r.fields.iter().map(|f| &f.0).collect())
        .unwrap_or_default();
    let metrics = fields
        .iter()
        .enumerate()
        .map(|(i, name)| Metric {
            name: format!("cpu.{name}"),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: rows
                    .iter()
                    .map(|row| NumberDataPoint {
                        attributes: row
                            .tags
                            .iter()
                            .map(|(k, v)| KeyValue {
                                key: k.clone(),
                                value: Some(AnyValue {
                                    value: Some(any_value::Value::StringValue(v.clone())),
                                }),
                                ..Default::default()
                            })
                            .collect(),
                        time_unix_nano: row.time_ns as u64,
                        value: Some(number_data_point::Value::AsDouble(row.fields[i].1)),
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        })
        .collect();
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    request.encode_to_vec()
}
