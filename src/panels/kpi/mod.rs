//! `kpi`: one number. Without an aggregation function it is the newest value in the range;
//! with one (`aggregation.function: avg`, …) it is that aggregate over the range. Thresholds
//! give colour and label; `display.show_delta` compares with the previous period of equal
//! length.
//!
//! Answer: `{panel, type, title, description, range, value, formatted, unit, decimals, time, color,
//! label, previous, delta, delta_percent}`. A `sql:` panel returns a column `value` (first row
//! counts) and optionally `time`.

mod fragment;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::answer::Header;
use super::kind::{KindSpec, Source};
use super::kinds::{PanelAnswer, PanelKind};
use super::shared_scan::Aggregated;
use super::values::{floats, timestamps_ns};
use super::{Bucket, PanelError, Run, newest, sqlgen};
use crate::clock::{Timestamp, epoch_ms};
use crate::config::{AggregateFn, PanelConfig, Threshold};
use crate::query::Params;
use crate::storage::TIME_COLUMN;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KpiAnswer {
    #[serde(flatten)]
    pub header: Header,
    pub value: Option<f64>,
    /// The value with its unit and decimals, as shown.
    pub formatted: String,
    pub unit: Option<String>,
    pub decimals: u32,
    /// When the value was measured (the newest row it covers).
    #[serde(with = "epoch_ms::option")]
    pub time: Option<Timestamp>,
    /// The reached threshold's colour and label.
    pub color: Option<String>,
    pub label: Option<String>,
    /// The same measure over the previous period of equal length (`display.show_delta`).
    pub previous: Option<f64>,
    pub delta: Option<f64>,
    pub delta_percent: Option<f64>,
}

pub struct Kpi;

static SPEC: KindSpec = KindSpec {
    name: "kpi",
    default_size: (4, 1),
    source: Source::Roles {
        roles: &["value", "timestamp"],
        required: &["value"],
        numeric_value: true,
    },
    sql_columns: &["value"],
    display_keys: &["unit", "decimals", "thresholds", "show_delta"],
    ..KindSpec::PLAIN
};

#[async_trait]
impl PanelKind for Kpi {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn run(&self, run: &Run<'_>) -> Result<PanelAnswer, PanelError> {
        answer(run).await.map(PanelAnswer::Kpi)
    }

    /// The readings in the range, oldest first.
    async fn export_query(&self, run: &Run<'_>) -> Result<(String, Params), PanelError> {
        let config = &run.panel.config;
        let params = sqlgen::base_params(run, run.range.from_ns, run.range.to_ns, Bucket::Raw);
        let sql = match &config.sql {
            Some(sql) => sql.clone(),
            None => {
                let ts = sqlgen::ident(sqlgen::time_column(config));
                let value = sqlgen::role(config, "value").unwrap_or_else(|| "NULL".into());
                format!(
                    "SELECT {ts} AS time, {value} AS value {} ORDER BY {ts}",
                    sqlgen::from_where(config, &[])
                )
            }
        };
        Ok((sql, params))
    }
}

/// A finite number, else none (NaN and infinities have no JSON form).
fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite())
}

async fn answer(run: &Run<'_>) -> Result<KpiAnswer, PanelError> {
    let config = &run.panel.config;
    let current = async {
        match newest_value(run).await? {
            Some(newest) => Ok(newest),
            None => value_in(run, run.range.from_ns, run.range.to_ns, Want::ValueAndTime).await,
        }
    };
    // Side by side: each may wait for other panels' aggregates of its period (shared scans).
    let previous = async {
        if config.display.show_delta != Some(true) {
            return Ok(None);
        }
        let before = run.range.previous();
        let (value, _) = value_in(run, before.from_ns, before.to_ns, Want::Value).await?;
        Ok::<_, PanelError>(value)
    };
    let ((value, time), previous) = tokio::try_join!(current, previous)?;
    let delta = value.zip(previous).map(|(v, p)| v - p);
    let delta_percent = delta
        .zip(previous)
        .and_then(|(d, p)| (p != 0.0).then(|| d / p.abs() * 100.0));
    let threshold = value.and_then(|v| pick_threshold(&config.display.thresholds, v));
    Ok(KpiAnswer {
        header: run.header(),
        value: finite(value),
        formatted: format_value(config, value),
        unit: config.display.unit.clone(),
        decimals: config.display.decimals.unwrap_or(2),
        time: time.map(Timestamp::from_ns),
        color: threshold.map(|t| t.color.clone()),
        label: threshold.and_then(|t| t.label.clone()),
        previous: finite(previous),
        delta: finite(delta),
        delta_percent: finite(delta_percent),
    })
}

/// The highest threshold at or below `value` (thresholds ascend; validated at load).
pub fn pick_threshold(thresholds: &[Threshold], value: f64) -> Option<&Threshold> {
    thresholds
        .iter()
        .rev()
        .find(|t| value >= t.value)
        .or(thresholds.first())
}

fn format_value(config: &PanelConfig, value: Option<f64>) -> String {
    let Some(v) = value else {
        return "–".into();
    };
    let decimals = config.display.decimals.unwrap_or(2) as usize;
    match &config.display.unit {
        Some(unit) if unit == "%" => format!("{v:.decimals$}%"),
        Some(unit) => format!("{v:.decimals$} {unit}"),
        None => format!("{v:.decimals$}"),
    }
}

/// A KPI of the newest value (no aggregation, or `last`) from the newest row of every series
/// (`last_rows`) instead of a scan, when [`newest::source`] allows it: the newest of those rows
/// is the table's newest row, the scan's answer when its value is set and it lies inside the
/// range (otherwise the scan answers).
async fn newest_value(run: &Run<'_>) -> Result<Option<(Option<f64>, Option<i64>)>, PanelError> {
    let config = &run.panel.config;
    let function = config.aggregation.as_ref().and_then(|a| a.function);
    if !matches!(function, None | Some(AggregateFn::Last)) {
        return Ok(None);
    }
    newest_row(run, newest::source(run), run.range.from_ns).await
}

/// The value and time of the newest of `table`'s newest rows from `from_ns` on, when that
/// row lies before the range's end (the scan's answer then); `Some((None, None))` when there
/// are no rows at all, `None` when the scan must answer.
async fn newest_row(
    run: &Run<'_>,
    table: Option<&str>,
    from_ns: i64,
) -> Result<Option<(Option<f64>, Option<i64>)>, PanelError> {
    let Some(table) = table else {
        return Ok(None);
    };
    let config = &run.panel.config;
    let ts = sqlgen::ident(TIME_COLUMN);
    let value = sqlgen::role(config, "value").unwrap_or_else(|| "NULL".into());
    let sql = format!(
        "SELECT {value} AS value, {ts} AS time {} ORDER BY {ts} DESC LIMIT 1",
        newest::from_where(run, table)
    );
    let params = sqlgen::base_params(run, from_ns, run.range.to_ns, Bucket::Raw);
    let batches = run.rows(&sql, &params).await?;
    let value = floats(&batches, "value").and_then(|v| v.first().copied().flatten());
    let time = timestamps_ns(&batches, "time").and_then(|t| t.first().copied().flatten());
    Ok(match (value, time) {
        (Some(v), Some(t)) if t < run.range.to_ns => Some((Some(v), Some(t))),
        // No rows in the range at all: the scan would find none either.
        (None, None) if batches.iter().all(|b| b.num_rows() == 0) => Some((None, None)),
        _ => None,
    })
}

/// Whether the caller shows the time of the newest value (the previous period's is not).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Value,
    ValueAndTime,
}

async fn value_in(
    run: &Run<'_>,
    from_ns: i64,
    to_ns: i64,
    want: Want,
) -> Result<(Option<f64>, Option<i64>), PanelError> {
    let config = &run.panel.config;
    let params = sqlgen::base_params(run, from_ns, to_ns, Bucket::Raw);
    let sql = match &config.sql {
        Some(sql) => sql.clone(),
        None => {
            let ts = sqlgen::ident(sqlgen::time_column(config));
            let value = sqlgen::role(config, "value").unwrap_or_else(|| "NULL".into());
            let from_where = sqlgen::from_where(config, &[format!("{value} IS NOT NULL")]);
            match config.aggregation.as_ref().and_then(|a| a.function) {
                Some(f) if ignores_nulls(f) => {
                    return aggregate_in(run, f, from_ns, to_ns, want).await;
                }
                Some(f) => format!(
                    "SELECT {} AS value, max({ts}) AS time {from_where}",
                    sqlgen::aggregate(f, &value, &ts)
                ),
                None => format!(
                    "SELECT {value} AS value, {ts} AS time {from_where} ORDER BY {ts} DESC LIMIT 1"
                ),
            }
        }
    };
    let batches = run.rows(&sql, &params).await?;
    let values = floats(&batches, "value")
        .ok_or_else(|| run.shape_error("the query must return a numeric column `value`"))?;
    let times = timestamps_ns(&batches, "time").unwrap_or_default();
    Ok((
        values.first().copied().flatten(),
        times.first().copied().flatten(),
    ))
}

/// Aggregates that skip nulls by themselves and that a declared rollup can answer exactly.
fn ignores_nulls(f: AggregateFn) -> bool {
    matches!(
        f,
        AggregateFn::Avg
            | AggregateFn::Min
            | AggregateFn::Max
            | AggregateFn::Sum
            | AggregateFn::Count
    )
}

/// The value as one aggregate with nothing but the panel's own filter — the shape the rollup
/// rewrite answers from a table's rollups instead of its raw rows — and, apart (when wanted),
/// the time of the newest value: from the table's newest rows when the newest of them is in
/// range and has the value, else looked for in the range's last hour first (a live dashboard
/// finds it there, reading one hour of rows), then in the whole range.
async fn aggregate_in(
    run: &Run<'_>,
    f: AggregateFn,
    from_ns: i64,
    to_ns: i64,
    want: Want,
) -> Result<(Option<f64>, Option<i64>), PanelError> {
    const HOUR_NS: i64 = 3_600_000_000_000;
    let config = &run.panel.config;
    let ts = sqlgen::ident(sqlgen::time_column(config));
    let value = sqlgen::role(config, "value").unwrap_or_else(|| "NULL".into());
    let query = Aggregated {
        keys: String::new(),
        aggregate: sqlgen::aggregate(f, &value, &ts),
        rest: sqlgen::from_where(config, &[]),
    };
    let params = sqlgen::base_params(run, from_ns, to_ns, Bucket::Raw);
    let batches = run.aggregated(&query, &params).await?;
    let aggregated = floats(&batches, "value")
        .ok_or_else(|| run.shape_error("the query must return a numeric column `value`"))?
        .first()
        .copied()
        .flatten();
    if want == Want::Value {
        return Ok((aggregated, None));
    }
    match newest_row(run, newest::any_range_source(run), from_ns).await? {
        Some((Some(_), time)) => return Ok((aggregated, time)),
        // No newest row in range and no value: nothing to date. (With a value, the rows are
        // past the retention the newest rows keep to but still in files: the scan dates it.)
        Some((None, None)) if aggregated.is_none() => return Ok((None, None)),
        _ => {}
    }
    let newest = format!(
        "SELECT max({ts}) AS time {}",
        sqlgen::from_where(config, &[format!("{value} IS NOT NULL")])
    );
    let last_hour = from_ns.max(to_ns.saturating_sub(HOUR_NS));
    let windows = if last_hour > from_ns {
        vec![last_hour, from_ns]
    } else {
        vec![from_ns]
    };
    for start in windows {
        let params = sqlgen::base_params(run, start, to_ns, Bucket::Raw);
        let batches = run.rows(&newest, &params).await?;
        let time = timestamps_ns(&batches, "time").and_then(|t| t.first().copied().flatten());
        if time.is_some() {
            return Ok((aggregated, time));
        }
    }
    Ok((aggregated, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(value: f64, label: &str) -> Threshold {
        Threshold {
            value,
            color: "#000".into(),
            label: Some(label.into()),
        }
    }

    #[test]
    fn threshold_is_the_highest_reached() {
        let list = [t(0.0, "good"), t(70.0, "warning"), t(90.0, "critical")];
        let label = |v| {
            pick_threshold(&list, v)
                .and_then(|t| t.label.clone())
                .unwrap()
        };
        assert_eq!(label(-5.0), "good");
        assert_eq!(label(69.9), "good");
        assert_eq!(label(70.0), "warning");
        assert_eq!(label(95.0), "critical");
        assert!(pick_threshold(&[], 1.0).is_none());
    }
}
