//! `timeseries`: one line per series, one point per bucket (or per row when raw).
//!
//! Answer: `{panel, type, title, description, range, bucket, aggregation, truncated,
//! series: [{name, points: [[epoch_ms, value], ...]}], display}`. Structured sources group by
//! `date_bin($bucket, time, $origin)`; a `sql:` panel returns columns `time`, `value` and
//! optionally `series`.

mod downsample;
mod fragment;
mod query;

pub use downsample::Downsample;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::answer::Header;
use super::kind::{KindSpec, Source};
use super::kinds::{PanelAnswer, PanelKind};
use super::values::{floats, has_column, texts, timestamps_ns};
use super::{Bucket, PanelError, Run};
use crate::clock::Timestamp;
use crate::config::{AggregateFn, Display};
use crate::query::Params;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeseriesAnswer {
    #[serde(flatten)]
    pub header: Header,
    pub bucket: Bucket,
    /// The function per bucket; none for raw rows.
    pub aggregation: Option<AggregateFn>,
    /// Raw rows stopped at the server's `raw_limit` (kept for older clients: raw ranges past
    /// it are downsampled instead, so this stays false).
    pub truncated: bool,
    /// Set when raw rows past `raw_limit` were downsampled to the chart's width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downsample: Option<Downsample>,
    pub series: Vec<Series>,
    pub display: Display,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
    /// The entity page this series opens (`display.link`, with `row.series` its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// Each series' link to its entity page, when the panel declares `display.link`.
fn link_series(run: &Run<'_>, series: &mut [Series]) -> Result<(), PanelError> {
    let Some(link) = &run.panel.config.display.link else {
        return Ok(());
    };
    for s in series {
        let context = serde_json::json!({ "row": { "series": s.name } });
        let url = super::links::to_dashboard(run, link, &context)
            .map_err(|m| super::links::link_error(run, "display", &m))?;
        s.link = Some(url);
    }
    Ok(())
}

/// One point; in JSON `[epoch_ms, value]`, a missing or non-finite value as `null`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub time: Timestamp,
    pub value: Option<f64>,
}

impl Serialize for Point {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.time.ms(), self.value.filter(|v| v.is_finite())).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Point {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (ms, value) = <(i64, Option<f64>)>::deserialize(d)?;
        Ok(Self {
            time: Timestamp::from_ms(ms),
            value,
        })
    }
}

pub struct Timeseries;

static SPEC: KindSpec = KindSpec {
    name: "timeseries",
    default_size: (8, 2),
    source: Source::Roles {
        roles: &["timestamp", "value", "series_label"],
        required: &["value"],
        numeric_value: true,
    },
    sql_columns: &["time", "value"],
    display_keys: &[
        "y_axis_label",
        "y_axis_range",
        "line_color",
        "colors",
        "fill_area",
        "link",
    ],
    chart: true,
    ..KindSpec::PLAIN
};

#[async_trait]
impl PanelKind for Timeseries {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn run(&self, run: &Run<'_>) -> Result<PanelAnswer, PanelError> {
        answer(run).await.map(PanelAnswer::Timeseries)
    }

    async fn export_query(&self, run: &Run<'_>) -> Result<(String, Params), PanelError> {
        let (query, params, _, _) = query::query(run, None)?;
        Ok((query.sql(), params))
    }
}

async fn answer(run: &Run<'_>) -> Result<TimeseriesAnswer, PanelError> {
    let config = &run.panel.config;
    let (query, params, bucket, function) = query::query(run, Some(run.raw_limit + 1))?;
    let batches = query.rows(run, &params).await?;
    let times = timestamps_ns(&batches, "time")
        .ok_or_else(|| run.shape_error("the query must return a timestamp column `time`"))?;
    let values = floats(&batches, "value")
        .ok_or_else(|| run.shape_error("the query must return a numeric column `value`"))?;
    let labels = if has_column(&batches, "series") {
        texts(&batches, "series").unwrap_or_default()
    } else {
        vec![]
    };
    if bucket == Bucket::Raw && times.len() > run.raw_limit {
        return downsampled(run).await;
    }
    let default_name = default_series_name(config);
    let mut series: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for (i, (t, v)) in times.iter().zip(&values).enumerate() {
        let Some(t) = t else { continue };
        let name = labels
            .get(i)
            .cloned()
            .flatten()
            .unwrap_or_else(|| default_name.clone());
        series.entry(name).or_default().push(Point {
            time: Timestamp::from_ns(*t),
            value: *v,
        });
    }
    check_series_count(run, series.len())?;
    let series = series
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by_key(|p| p.time);
            Series {
                name,
                points,
                link: None,
            }
        })
        .collect::<Vec<_>>();
    let mut series = series;
    link_series(run, &mut series)?;
    Ok(TimeseriesAnswer {
        header: run.header(),
        bucket,
        aggregation: (bucket != Bucket::Raw).then_some(function),
        truncated: false,
        downsample: None,
        series,
        display: config.display.clone(),
    })
}

fn default_series_name(config: &crate::config::PanelConfig) -> String {
    config
        .data_source
        .as_ref()
        .and_then(|d| d.columns.as_ref())
        .and_then(|c| c.role("value"))
        .unwrap_or("value")
        .to_string()
}

fn check_series_count(run: &Run<'_>, found: usize) -> Result<(), PanelError> {
    if found > run.max_series {
        return Err(PanelError::TooManySeries {
            panel: run.panel.id.clone(),
            found,
            limit: run.max_series,
        });
    }
    Ok(())
}

/// A raw range with more rows than `raw_limit`: every row of the range streams through M4,
/// so the whole range is drawn (the newest rows too) in at most four points per column.
async fn downsampled(run: &Run<'_>) -> Result<TimeseriesAnswer, PanelError> {
    use futures::StreamExt;
    let config = &run.panel.config;
    let columns = run.request.max_points()?;
    let (query, params, _, _) = query::query(run, None)?;
    let mut stream = run.stream(&query.sql(), &params).await?;
    let mut m4 = downsample::M4::new(run.range.from_ns, run.range.to_ns, columns);
    let default_name = default_series_name(config);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|source| PanelError::Query {
            panel: run.panel.id.clone(),
            source,
        })?;
        let batch = std::slice::from_ref(&batch);
        let times = timestamps_ns(batch, "time")
            .ok_or_else(|| run.shape_error("the query must return a timestamp column `time`"))?;
        let values = floats(batch, "value")
            .ok_or_else(|| run.shape_error("the query must return a numeric column `value`"))?;
        let labels = texts(batch, "series").unwrap_or_default();
        for (i, (t, v)) in times.iter().zip(&values).enumerate() {
            let Some(t) = t else { continue };
            let name = labels.get(i).and_then(|l| l.as_deref());
            m4.push(name.unwrap_or(&default_name), *t, *v);
        }
        // Checked as rows come, so a range of a million series stops early.
        check_series_count(run, m4.series_count())?;
    }
    let (series, done) = m4.finish();
    let mut series: Vec<Series> = series
        .into_iter()
        .map(|(name, points)| Series {
            name,
            points,
            link: None,
        })
        .collect();
    link_series(run, &mut series)?;
    Ok(TimeseriesAnswer {
        header: run.header(),
        bucket: Bucket::Raw,
        aggregation: None,
        truncated: false,
        downsample: Some(done),
        series,
        display: config.display.clone(),
    })
}
