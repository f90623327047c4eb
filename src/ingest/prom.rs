//! Prometheus remote write 1.0: a snappy-compressed protobuf `WriteRequest` → one checked write
//! per metric. Each metric name is a table (named as line-protocol measurements are, see
//! `influx::table_name`), its other labels tag columns (a label named `time` or `value` is
//! stored as `label_time` / `label_value`), each sample a row with `value` (float) and `time`
//! (the sample's milliseconds). Staleness markers are not stored; exemplars, native histograms
//! and metadata are read past without failing the request.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

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

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
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
pub fn unsnappy(body: &[u8], max_bytes: usize) -> Result<Vec<u8>, IngestError> {
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
        .map_err(|e| invalid_request(format!("the snappy body is damaged: {e}")))
}

/// Decodes and checks a (decompressed) `WriteRequest`.
pub fn decode_remote_write(
    tenant: &Arc<TenantStore>,
    body: &[u8],
    limits: Limits,
) -> Result<Vec<Validated>, IngestError> {
    let request = WriteRequest::decode(body)
        .map_err(|e| invalid_request(format!("the body is not a remote-write request: {e}")))?;
    let mut by_table: BTreeMap<String, Vec<&TimeSeries>> = BTreeMap::new();
    for (i, series) in request.timeseries.iter().enumerate() {
        let name = series
            .labels
            .iter()
            .find(|l| l.name == "__name__")
            .map(|l| l.value.as_str())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid_request(format!("time series {i} has no __name__ label")))?;
        by_table.entry(table_name(name)).or_default().push(series);
    }
    let mut checked = Vec::with_capacity(by_table.len());
    for (table, series) in by_table {
        let mut write = Write::to(tenant.clone(), &table, limits)?.limit_series();
        let rows = write.rows(Precision::Milliseconds, |builder| {
            for (i, s) in series.iter().enumerate() {
                for sample in &s.samples {
                    if sample.value.to_bits() == STALE_NAN {
                        continue;
                    }
                    builder.begin_row(i + 1);
                    for label in s.labels.iter().filter(|l| l.name != "__name__") {
                        let column: Cow<'_, str> = match label.name.as_str() {
                            TIME_COLUMN | "value" => format!("label_{}", label.name).into(),
                            other => other.into(),
                        };
                        builder.set_typed(
                            &column,
                            ColumnKind::Tag,
                            Value::Str(label.value.as_str().into()),
                        );
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
            Ok(_) | Err(IngestError::Empty) => checked.push(write.validated()),
            Err(e) => return Err(e),
        }
    }
    Ok(checked)
}

fn invalid_request(message: String) -> IngestError {
    IngestError::Malformed(message)
}
