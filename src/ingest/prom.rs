//! Prometheus remote write 1.0 and 2.0: a snappy-compressed protobuf `WriteRequest` (or 2.0's
//! `Request`, whose labels point into a symbol table) → one checked write per metric. Each metric name is a table (named as line-protocol measurements are, see
//! `influx::table_name`), its other labels tag columns (a label named `time` or `value` is
//! stored as `label_time` / `label_value`), each sample a row with `value` (float) and `time`
//! (the sample's milliseconds). Staleness markers are not stored; exemplars, native histograms
//! and metadata are read past without failing the request.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use super::influx::table_name;
use super::{IngestError, Limits, Precision, Validated, Value, Write};
use crate::storage::{ColumnKind, FieldType, TIME_COLUMN, TenantStore};

/// The messages of `prometheus/prompb/remote.proto` and `types.proto` that carry samples;
/// fields not declared here (exemplars, histograms, metadata) are skipped by the decoder.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// Names and values are slices of the request buffer (decoded from `Bytes`, no copy per
/// label); they are checked to be UTF-8 where they are read.
#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(bytes = "bytes", tag = "1")]
    pub name: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Prometheus marks a series that disappeared with this NaN.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Decompresses (snappy block format, as Prometheus sends it) within `max_bytes`.
pub fn unsnappy(body: &[u8], max_bytes: usize) -> Result<Bytes, IngestError> {
    let len = snap::raw::decompress_len(body)
        .map_err(|e| invalid_request(format!("the body is not snappy-compressed: {e}")))?;
    if len > max_bytes {
        return Err(IngestError::Limit {
            what: "decompressed body bytes".into(),
            limit: max_bytes,
            found: len,
        });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map(Bytes::from)
        .map_err(|e| invalid_request(format!("the snappy body is damaged: {e}")))
}

/// Which remote-write message a body holds, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `prometheus.WriteRequest` (1.0; also what a bare `application/x-protobuf` means).
    V1,
    /// `io.prometheus.write.v2.Request` (2.0: labels as references into a symbol table).
    V2,
}

impl Version {
    /// From `Content-Type`; `None` for a `proto=` this server does not speak (answered 415, so
    /// a 2.0 sender falls back to 1.0).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let proto = content_type
            .split(';')
            .skip(1)
            .filter_map(|p| p.trim().strip_prefix("proto="))
            .next();
        match proto {
            None | Some("prometheus.WriteRequest") => Some(Self::V1),
            Some("io.prometheus.write.v2.Request") => Some(Self::V2),
            Some(_) => None,
        }
    }
}

/// What a remote-write 2.0 sender is told was stored (its `X-Prometheus-Remote-Write-*`
/// headers).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub samples: usize,
}

/// One series of either version: its labels and samples, borrowed from the request.
struct Series<'a> {
    labels: Vec<(&'a str, &'a str)>,
    samples: &'a [Sample],
}

/// Decodes and checks a (decompressed) remote-write body of `version`.
pub fn decode_remote_write(
    tenant: &Arc<TenantStore>,
    body: Bytes,
    version: Version,
    limits: Limits,
) -> Result<(Vec<Validated>, Written), IngestError> {
    match version {
        Version::V1 => {
            let request = WriteRequest::decode(body).map_err(|e| {
                invalid_request(format!("the body is not a remote-write request: {e}"))
            })?;
            let series = request
                .timeseries
                .iter()
                .enumerate()
                .map(|(at, s)| {
                    let labels = s
                        .labels
                        .iter()
                        .map(|l| Ok((utf8(&l.name, at)?, utf8(&l.value, at)?)))
                        .collect::<Result<_, IngestError>>()?;
                    Ok(Series {
                        labels,
                        samples: &s.samples,
                    })
                })
                .collect::<Result<_, IngestError>>()?;
            write_series(tenant, series, limits)
        }
        Version::V2 => {
            let request = v2::Request::decode(body).map_err(|e| {
                invalid_request(format!("the body is not a remote-write 2.0 request: {e}"))
            })?;
            let series = request.series()?;
            write_series(tenant, series, limits)
        }
    }
}

fn utf8(bytes: &[u8], series: usize) -> Result<&str, IngestError> {
    std::str::from_utf8(bytes).map_err(|_| {
        invalid_request(format!(
            "time series {series} has a label that is not UTF-8"
        ))
    })
}

fn write_series(
    tenant: &Arc<TenantStore>,
    series: Vec<Series<'_>>,
    limits: Limits,
) -> Result<(Vec<Validated>, Written), IngestError> {
    let mut by_table: BTreeMap<String, Vec<&Series<'_>>> = BTreeMap::new();
    for (i, s) in series.iter().enumerate() {
        let name = s
            .labels
            .iter()
            .find(|(name, _)| *name == "__name__")
            .map(|(_, value)| *value)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid_request(format!("time series {i} has no __name__ label")))?;
        by_table.entry(table_name(name)).or_default().push(s);
    }
    let mut checked = Vec::with_capacity(by_table.len());
    let mut written = Written::default();
    for (table, series) in by_table {
        let mut write = Write::to(tenant.clone(), &table, limits)?.limit_series();
        let rows = write.rows(Precision::Milliseconds, |builder| {
            for (i, s) in series.iter().enumerate() {
                for sample in s.samples {
                    if sample.value.to_bits() == STALE_NAN {
                        continue;
                    }
                    builder.begin_row(i + 1);
                    for &(name, value) in s.labels.iter().filter(|(n, _)| *n != "__name__") {
                        let column: Cow<'_, str> = match name {
                            TIME_COLUMN | "value" => format!("label_{name}").into(),
                            other => other.into(),
                        };
                        builder.set_typed(&column, ColumnKind::Tag, Value::Str(value.into()));
                    }
                    builder.set_typed(
                        "value",
                        ColumnKind::Field(FieldType::Float),
                        Value::Float(sample.value),
                    );
                    builder.set(TIME_COLUMN, Value::Int(sample.timestamp));
                    builder.end_row();
                }
            }
        });
        match rows {
            Ok(n) => written.samples += n,
            Err(IngestError::Empty) => {}
            Err(e) => return Err(e),
        }
        checked.push(write.validated());
    }
    Ok((checked, written))
}

/// `io.prometheus.write.v2`: the fields that carry float samples; native histograms,
/// exemplars and metadata are read past.
mod v2 {
    use prost::Message;

    use super::{Sample, Series, invalid_request};
    use crate::ingest::IngestError;

    #[derive(Clone, PartialEq, Message)]
    pub struct Request {
        #[prost(string, repeated, tag = "4")]
        pub symbols: Vec<String>,
        #[prost(message, repeated, tag = "5")]
        pub timeseries: Vec<TimeSeries>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct TimeSeries {
        /// Pairs of indices into `symbols`: name, value, name, value…
        #[prost(uint32, repeated, tag = "1")]
        pub labels_refs: Vec<u32>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }

    impl Request {
        /// Every series with its labels looked up; a reference outside the symbol table or an
        /// odd number of references is malformed.
        pub(super) fn series(&self) -> Result<Vec<Series<'_>>, IngestError> {
            let symbol = |i: u32, at: usize| {
                self.symbols
                    .get(i as usize)
                    .map(String::as_str)
                    .ok_or_else(|| {
                        invalid_request(format!(
                            "time series {at} refers to symbol {i}; the table has {}",
                            self.symbols.len()
                        ))
                    })
            };
            self.timeseries
                .iter()
                .enumerate()
                .map(|(at, s)| {
                    if s.labels_refs.len() % 2 != 0 {
                        return Err(invalid_request(format!(
                            "time series {at} has an odd number of label references"
                        )));
                    }
                    let labels = s
                        .labels_refs
                        .chunks(2)
                        .map(|pair| Ok((symbol(pair[0], at)?, symbol(pair[1], at)?)))
                        .collect::<Result<_, IngestError>>()?;
                    Ok(Series {
                        labels,
                        samples: &s.samples,
                    })
                })
                .collect()
        }
    }
}

fn invalid_request(message: String) -> IngestError {
    IngestError::Malformed(message)
}
