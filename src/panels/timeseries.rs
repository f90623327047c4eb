//! `timeseries`: one line per series, one point per bucket (or per row when raw).
//!
//! Answer: `{panel, type, title, description, range, bucket, aggregation, truncated,
//! series: [{name, points: [[epoch_ms, value], ...]}], display}`. Structured sources group by
//! `date_bin($bucket, time, $origin)`; a `sql:` panel returns columns `time`, `value` and
//! optionally `series`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::values::{floats, has_column, number, texts, timestamps_ns};
use super::{Bucket, PanelError, Run, sqlgen};
use crate::config::{AggregateFn, HumanDuration};
use crate::query::Params;

pub async fn run(run: &Run<'_>) -> Result<Value, PanelError> {
    let config = &run.panel.config;
    let (sql, params, bucket, function) = query(run, Some(run.raw_limit + 1))?;
    let batches = run.rows(&sql, &params).await?;
    let times = timestamps_ns(&batches, "time")
        .ok_or_else(|| run.shape_error("the query must return a timestamp column `time`"))?;
    let values = floats(&batches, "value")
        .ok_or_else(|| run.shape_error("the query must return a numeric column `value`"))?;
    let labels = if has_column(&batches, "series") {
        texts(&batches, "series").unwrap_or_default()
    } else {
        vec![]
    };
    let truncated = bucket == Bucket::Raw && times.len() > run.raw_limit;
    let default_name = config
        .data_source
        .as_ref()
        .and_then(|d| d.columns.as_ref())
        .and_then(|c| c.role("value"))
        .unwrap_or("value")
        .to_string();
    let mut series: BTreeMap<String, Vec<(i64, Option<f64>)>> = BTreeMap::new();
    // Raw answers stop at the limit (`truncated` says so); aggregated ones are bounded by the
    // points-per-series guard instead and are never cut.
    let keep = if bucket == Bucket::Raw {
        run.raw_limit
    } else {
        usize::MAX
    };
    for (i, (t, v)) in times.iter().zip(&values).enumerate().take(keep) {
        let Some(t) = t else { continue };
        let name = labels
            .get(i)
            .cloned()
            .flatten()
            .unwrap_or_else(|| default_name.clone());
        series.entry(name).or_default().push((*t, *v));
    }
    let series: Vec<Value> = series
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by_key(|(t, _)| *t);
            let points: Vec<Value> = points
                .into_iter()
                .map(|(t, v)| json!([t.div_euclid(1_000_000), number(v)]))
                .collect();
            json!({ "name": name, "points": points })
        })
        .collect();
    let mut out = run.header();
    out.insert(
        "bucket".into(),
        match bucket {
            Bucket::Raw => json!("raw"),
            Bucket::Every(d) => json!(HumanDuration(d).to_string()),
        },
    );
    out.insert(
        "aggregation".into(),
        if bucket == Bucket::Raw {
            Value::Null
        } else {
            json!(function)
        },
    );
    out.insert("truncated".into(), json!(truncated));
    out.insert("series".into(), Value::Array(series));
    out.insert("display".into(), json!(config.display));
    Ok(Value::Object(out))
}

/// The query behind the panel, its parameters, bucket and function; raw rows stop at `limit`
/// when given (exports pass none).
pub(super) fn query(
    run: &Run<'_>,
    limit: Option<usize>,
) -> Result<(String, Params, Bucket, AggregateFn), PanelError> {
    let config = &run.panel.config;
    let bucket = sqlgen::bucket_for(run)?;
    let function = config
        .aggregation
        .as_ref()
        .and_then(|a| a.function)
        .unwrap_or_default();
    let mut params = sqlgen::base_params(run, run.range.from_ns, run.range.to_ns, bucket);
    let sql = match &config.sql {
        Some(sql) => sql.clone(),
        None => structured_sql(run, bucket, function, &mut params, limit),
    };
    Ok((sql, params, bucket, function))
}

fn structured_sql(
    run: &Run<'_>,
    bucket: Bucket,
    function: AggregateFn,
    params: &mut Params,
    limit: Option<usize>,
) -> String {
    let config = &run.panel.config;
    let ts = sqlgen::ident(sqlgen::time_column(config));
    let value = sqlgen::role(config, "value").unwrap_or_else(|| "NULL".into());
    let series = sqlgen::role(config, "series_label");
    let mut extra = vec![];
    if let (Some(col), Some(wanted)) = (&series, run.request.series()) {
        params.insert(
            "series".into(),
            datafusion::common::ScalarValue::Utf8(Some(wanted.to_string())),
        );
        extra.push(format!("CAST({col} AS VARCHAR) = $series"));
    }
    let from_where = sqlgen::from_where(config, &extra);
    let series_select = series
        .as_ref()
        .map(|s| format!(", {s} AS series"))
        .unwrap_or_default();
    match bucket {
        // Raw rows, newest cut off past the limit (`truncated` says so).
        Bucket::Raw => match limit {
            Some(n) => format!(
                "SELECT {ts} AS time, {value} AS value{series_select} {from_where} ORDER BY {ts} LIMIT {n}"
            ),
            // An uncapped export streams in storage order (by series, then time, day by day):
            // a global sort of millions of rows would hold them all in memory.
            None => format!("SELECT {ts} AS time, {value} AS value{series_select} {from_where}"),
        },
        Bucket::Every(_) => {
            let group = if series.is_some() { "1, 3" } else { "1" };
            format!(
                "SELECT date_bin($bucket, {ts}, $origin) AS time, {agg} AS value{series_select} \
                 {from_where} GROUP BY {group} ORDER BY 1",
                agg = sqlgen::aggregate(function, &value, &ts)
            )
        }
    }
}
