//! The query behind a timeseries panel: `date_bin` buckets with the panel's aggregate, or raw
//! rows, every request value bound as a parameter.

use super::super::{Bucket, PanelError, Run, sqlgen};
use crate::config::AggregateFn;
use crate::query::Params;

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
