//! OTLP metrics → tables. Each metric is a table named as line-protocol measurements are
//! (`http.server.duration` → `http_server_duration`), its attributes tag columns:
//!
//! - gauge, sum: `value` (float; integer points converted); sums also `temporality` (tag:
//!   `cumulative` or `delta`), `monotonic` (boolean) and `start_time` (ns since the epoch, the
//!   start of the cumulative run, so resets can be told). Cumulative sums are stored as received.
//! - histogram: `count` (unsigned), `sum`, `min`, `max` (floats, null when not sent),
//!   `temporality`, `start_time`; its buckets as rows of `<name>_bucket` with `le` (the upper
//!   bound, `inf` for the last) and `count` — the cumulative count up to `le`, Prometheus's
//!   layout, so `SELECT le, count … ORDER BY le` reads the distribution.
//! - exponential histogram: as a histogram plus `scale` and `zero_count`; its buckets are
//!   turned into the same `<name>_bucket` rows (`le` = the bucket's upper bound).
//! - summary: `count`, `sum`; its quantiles as rows of `<name>_quantile` (`quantile`, `value`).
//!
//! Points flagged "no recorded value" are skipped, as Prometheus's staleness markers are;
//! points without a value or with inconsistent buckets are counted in the partial success.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint,
    metric::Data, number_data_point,
};

use super::{Cell, Encoding, Rejected, Row, Tables, Tag, attribute_tags, nanos, tag_cells};
use crate::ingest::{IngestError, Limits, Validated, Value, table_name};
use crate::storage::{ColumnKind, FieldType, TenantStore};

/// Columns the mapping fills itself; attributes with these names get `attr_` before them.
const RESERVED: &[&str] = &[
    "value",
    "count",
    "sum",
    "min",
    "max",
    "le",
    "quantile",
    "temporality",
    "monotonic",
    "start_time",
    "scale",
    "zero_count",
];

/// Buckets of one exponential histogram point past this are refused (SDKs default to 160).
const MAX_BUCKETS: usize = 10_000;

/// `FLAG_NO_RECORDED_VALUE` of `DataPointFlags`.
const NO_RECORDED_VALUE: u32 = 1;

/// Decodes and checks an `ExportMetricsServiceRequest`; nothing is written here.
pub fn decode(
    tenant: &Arc<TenantStore>,
    body: &[u8],
    encoding: Encoding,
    limits: Limits,
    now_ns: i64,
) -> Result<(Vec<Validated>, Rejected), IngestError> {
    let request: ExportMetricsServiceRequest = encoding.decode(body)?;
    let mut tables = Tables::default();
    let mut rejected = Rejected::default();
    for resource_metrics in &request.resource_metrics {
        let mut resource = vec![];
        if let Some(r) = &resource_metrics.resource {
            attribute_tags(&mut resource, &r.attributes, RESERVED);
        }
        for scope in &resource_metrics.scope_metrics {
            for metric in &scope.metrics {
                let mut points = Points {
                    metric,
                    table: table_name(&metric.name),
                    resource: &resource,
                    now_ns,
                    tables: &mut tables,
                    rejected: &mut rejected,
                };
                points.read();
            }
        }
    }
    tables.leave_out_system_tables(&mut rejected);
    if tables.points() == 0 {
        return Ok((vec![], rejected));
    }
    Ok((tables.into_writes(tenant, limits, true)?, rejected))
}

/// One metric's points being turned into rows.
/// `'r`: the request the rows borrow from; `'p`: this metric's turn.
struct Points<'p, 'r> {
    metric: &'r Metric,
    table: String,
    resource: &'p [Tag<'r>],
    now_ns: i64,
    tables: &'p mut Tables<'r>,
    rejected: &'p mut Rejected,
}

impl<'r> Points<'_, 'r> {
    fn read(&mut self) {
        let name = &self.metric.name;
        if name.is_empty() {
            let count = points_in(self.metric);
            return self
                .rejected
                .add(count.max(1), || "a metric has no name".into());
        }
        match &self.metric.data {
            None => self
                .rejected
                .add(1, || format!("metric {name:?} carries no data")),
            Some(Data::Gauge(g)) => {
                for p in &g.data_points {
                    self.number(p, None);
                }
            }
            Some(Data::Sum(s)) => {
                for p in &s.data_points {
                    self.number(p, Some((s.aggregation_temporality, s.is_monotonic)));
                }
            }
            Some(Data::Histogram(h)) => {
                for p in &h.data_points {
                    self.histogram(p, h.aggregation_temporality);
                }
            }
            Some(Data::ExponentialHistogram(h)) => {
                for p in &h.data_points {
                    self.exponential(p, h.aggregation_temporality);
                }
            }
            Some(Data::Summary(s)) => {
                for p in &s.data_points {
                    self.summary(p);
                }
            }
        }
    }

    /// The row every point of this metric starts from: its time and tags; `None` (counted)
    /// when the time cannot be stored.
    fn row(
        &mut self,
        attributes: &'r [opentelemetry_proto::tonic::common::v1::KeyValue],
        time: u64,
    ) -> Option<(Row<'r>, Vec<Tag<'r>>)> {
        let Some(time) = nanos(time, self.now_ns) else {
            let name = &self.metric.name;
            self.rejected
                .add(1, || format!("metric {name:?}: a time past the year 2262"));
            return None;
        };
        let mut tags = self.resource.to_vec();
        attribute_tags(&mut tags, attributes, RESERVED);
        let cells = tag_cells(&tags, 6);
        Some((Row { time, cells }, tags))
    }

    fn number(&mut self, p: &'r NumberDataPoint, sum: Option<(i32, bool)>) {
        if p.flags & NO_RECORDED_VALUE != 0 {
            return;
        }
        let value = match p.value {
            Some(number_data_point::Value::AsDouble(v)) => v,
            Some(number_data_point::Value::AsInt(v)) => v as f64,
            None => {
                let name = &self.metric.name;
                return self
                    .rejected
                    .add(1, || format!("metric {name:?}: a data point has no value"));
            }
        };
        let Some((mut row, _)) = self.row(&p.attributes, p.time_unix_nano) else {
            return;
        };
        row.cells.push(float("value", value));
        if let Some((temporality, monotonic)) = sum {
            row.cells.push(temporality_cell(temporality));
            row.cells.push((
                "monotonic".into(),
                ColumnKind::Field(FieldType::Boolean),
                Value::Bool(monotonic),
            ));
            start_time(&mut row, p.start_time_unix_nano);
        }
        self.tables.push(&self.table, row);
    }

    fn histogram(&mut self, p: &'r HistogramDataPoint, temporality: i32) {
        if p.flags & NO_RECORDED_VALUE != 0 {
            return;
        }
        let bounds = &p.explicit_bounds;
        let counts = &p.bucket_counts;
        if !counts.is_empty() && counts.len() != bounds.len() + 1 {
            let name = &self.metric.name;
            let (c, b) = (counts.len(), bounds.len());
            return self.rejected.add(1, || {
                format!("metric {name:?}: {c} bucket counts for {b} bounds (one more count than bounds is needed)")
            });
        }
        let Some((mut row, tags)) = self.row(&p.attributes, p.time_unix_nano) else {
            return;
        };
        row.cells.push(unsigned("count", p.count));
        optional_floats(&mut row, [("sum", p.sum), ("min", p.min), ("max", p.max)]);
        row.cells.push(temporality_cell(temporality));
        start_time(&mut row, p.start_time_unix_nano);
        let time = row.time;
        self.tables.push(&self.table, row);
        let upper = bounds.iter().copied().chain(std::iter::once(f64::INFINITY));
        self.buckets(time, &tags, temporality, upper.zip(counts.iter().copied()));
    }

    fn exponential(&mut self, p: &'r ExponentialHistogramDataPoint, temporality: i32) {
        if p.flags & NO_RECORDED_VALUE != 0 {
            return;
        }
        let positive = p.positive.as_ref().map_or(0, |b| b.bucket_counts.len());
        let negative = p.negative.as_ref().map_or(0, |b| b.bucket_counts.len());
        if positive + negative > MAX_BUCKETS || !(-10..=20).contains(&p.scale) {
            let name = &self.metric.name;
            return self.rejected.add(1, || {
                format!("metric {name:?}: an exponential histogram needs scale -10..=20 and at most {MAX_BUCKETS} buckets")
            });
        }
        let Some((mut row, tags)) = self.row(&p.attributes, p.time_unix_nano) else {
            return;
        };
        row.cells.push(unsigned("count", p.count));
        optional_floats(&mut row, [("sum", p.sum), ("min", p.min), ("max", p.max)]);
        row.cells.push((
            "scale".into(),
            ColumnKind::Field(FieldType::Integer),
            Value::Int(p.scale.into()),
        ));
        row.cells.push(unsigned("zero_count", p.zero_count));
        row.cells.push(temporality_cell(temporality));
        start_time(&mut row, p.start_time_unix_nano);
        let time = row.time;
        self.tables.push(&self.table, row);
        let buckets = exponential_buckets(p);
        self.buckets(time, &tags, temporality, buckets.into_iter());
    }

    /// `<name>_bucket` rows: per (upper bound, count in the bucket), the cumulative count.
    fn buckets(
        &mut self,
        time: i64,
        tags: &[Tag<'r>],
        temporality: i32,
        buckets: impl Iterator<Item = (f64, u64)>,
    ) {
        let table = format!("{}_bucket", self.table);
        let mut cumulative = 0u64;
        for (le, count) in buckets {
            cumulative = cumulative.saturating_add(count);
            let mut cells = tag_cells(tags, 3);
            cells.push(float("le", le));
            cells.push(unsigned("count", cumulative));
            cells.push(temporality_cell(temporality));
            self.tables.push(&table, Row { time, cells });
        }
    }

    fn summary(&mut self, p: &'r SummaryDataPoint) {
        if p.flags & NO_RECORDED_VALUE != 0 {
            return;
        }
        let Some((mut row, tags)) = self.row(&p.attributes, p.time_unix_nano) else {
            return;
        };
        row.cells.push(unsigned("count", p.count));
        row.cells.push(float("sum", p.sum));
        start_time(&mut row, p.start_time_unix_nano);
        let time = row.time;
        self.tables.push(&self.table, row);
        let table = format!("{}_quantile", self.table);
        for q in &p.quantile_values {
            let mut cells = tag_cells(&tags, 2);
            cells.push(float("quantile", q.quantile));
            cells.push(float("value", q.value));
            self.tables.push(&table, Row { time, cells });
        }
    }
}

/// An exponential histogram's buckets as (upper bound, count), lowest bound first: negative
/// buckets (largest magnitude first), the zero bucket, then positive buckets. Bucket `i` of a
/// side covers magnitudes in (base^i, base^(i+1)], base = 2^(2^-scale).
fn exponential_buckets(p: &ExponentialHistogramDataPoint) -> Vec<(f64, u64)> {
    let base = 2f64.powf(2f64.powi(-p.scale));
    let side = |b: &Option<Buckets>| -> Vec<(i64, u64)> {
        b.as_ref().map_or(vec![], |b| {
            b.bucket_counts
                .iter()
                .enumerate()
                .map(|(j, c)| (i64::from(b.offset) + j as i64, *c))
                .collect()
        })
    };
    let mut out = vec![];
    for (index, count) in side(&p.negative).into_iter().rev() {
        out.push((-base.powf(index as f64), count));
    }
    out.push((p.zero_threshold, p.zero_count));
    for (index, count) in side(&p.positive) {
        out.push((base.powf(index as f64 + 1.0), count));
    }
    out
}

fn points_in(metric: &Metric) -> usize {
    match &metric.data {
        None => 0,
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
    }
}

fn float(name: &'static str, value: f64) -> Cell<'static> {
    (
        name.into(),
        ColumnKind::Field(FieldType::Float),
        Value::Float(value),
    )
}

fn unsigned(name: &'static str, value: u64) -> Cell<'static> {
    (
        name.into(),
        ColumnKind::Field(FieldType::UInteger),
        Value::UInt(value),
    )
}

fn optional_floats<const N: usize>(row: &mut Row<'_>, values: [(&'static str, Option<f64>); N]) {
    for (name, value) in values {
        if let Some(v) = value {
            row.cells.push(float(name, v));
        }
    }
}

fn start_time(row: &mut Row<'_>, start_time_unix_nano: u64) {
    if let Ok(start) = i64::try_from(start_time_unix_nano)
        && start > 0
    {
        row.cells.push((
            "start_time".into(),
            ColumnKind::Field(FieldType::Integer),
            Value::Int(start),
        ));
    }
}

fn temporality_cell(temporality: i32) -> Cell<'static> {
    let name = match temporality {
        1 => "delta",
        2 => "cumulative",
        _ => "unspecified",
    };
    (
        "temporality".into(),
        ColumnKind::Tag,
        Value::Str(name.into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_buckets_become_cumulative_upper_bounds() {
        let point = ExponentialHistogramDataPoint {
            scale: 0,
            zero_count: 1,
            zero_threshold: 0.0,
            positive: Some(Buckets {
                offset: 0,
                bucket_counts: vec![2, 3],
            }),
            negative: Some(Buckets {
                offset: 1,
                bucket_counts: vec![4],
            }),
            ..Default::default()
        };
        // base 2: negative bucket 1 covers [-4, -2), zero, then (1, 2] and (2, 4].
        assert_eq!(
            exponential_buckets(&point),
            vec![(-2.0, 4), (0.0, 1), (2.0, 2), (4.0, 3)]
        );
    }
}
