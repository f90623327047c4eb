//! The query behind a timeseries panel: `date_bin` buckets with the panel's aggregate, or raw
//! rows, every request value bound as a parameter.

use arrow::record_batch::RecordBatch;

use super::super::shared_scan::Aggregated;
use super::super::{Bucket, PanelError, Run, sqlgen};
use crate::config::AggregateFn;
use crate::query::Params;

/// The query behind a panel: an aggregate (shared with other panels over the same rows) or
/// rows as written (raw rows, a `sql:` panel).
pub(super) enum PanelQuery {
    Aggregated(Aggregated),
    Text(String),
}

impl PanelQuery {
    pub(super) fn sql(&self) -> String {
        match self {
            PanelQuery::Aggregated(query) => query.sql(),
            PanelQuery::Text(sql) => sql.clone(),
        }
    }

    pub(super) async fn rows(
        &self,
        run: &Run<'_>,
        params: &Params,
    ) -> Result<Vec<RecordBatch>, PanelError> {
        match self {
            PanelQuery::Aggregated(query) => run.aggregated(query, params).await,
            PanelQuery::Text(sql) => run.rows(sql, params).await,
        }
    }
}

/// The query behind the panel, its parameters, bucket and function; raw rows stop at `limit`
/// when given (exports pass none).
pub(super) fn query(
    run: &Run<'_>,
    limit: Option<usize>,
) -> Result<(PanelQuery, Params, Bucket, AggregateFn), PanelError> {
    let config = &run.panel.config;
    let bucket = sqlgen::bucket_for(run)?;
    let function = config
        .aggregation
        .as_ref()
        .and_then(|a| a.function)
        .unwrap_or_default();
    let mut params = sqlgen::base_params(run, run.range.from_ns, run.range.to_ns, bucket);
    let query = match &config.sql {
        Some(sql) => PanelQuery::Text(sql.clone()),
        None => structured(run, bucket, function, &mut params, limit),
    };
    Ok((query, params, bucket, function))
}

fn structured(
    run: &Run<'_>,
    bucket: Bucket,
    function: AggregateFn,
    params: &mut Params,
    limit: Option<usize>,
) -> PanelQuery {
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
        Bucket::Raw => PanelQuery::Text(match limit {
            Some(n) => format!(
                "SELECT {ts} AS time, {value} AS value{series_select} {from_where} ORDER BY {ts} LIMIT {n}"
            ),
            // An uncapped export streams in storage order (by series, then time, day by day):
            // a global sort of millions of rows would hold them all in memory.
            None => format!("SELECT {ts} AS time, {value} AS value{series_select} {from_where}"),
        }),
        Bucket::Every(_) => {
            let group = if series.is_some() { "1, 2" } else { "1" };
            PanelQuery::Aggregated(Aggregated {
                keys: format!("date_bin($bucket, {ts}, $origin) AS time{series_select}"),
                aggregate: sqlgen::aggregate(function, &value, &ts),
                rest: format!("{from_where} GROUP BY {group} ORDER BY 1"),
            })
        }
    }
}
