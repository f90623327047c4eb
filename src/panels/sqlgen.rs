//! SQL for structured `data_source` panels. Identifiers come from YAML and were checked against
//! the table schema at load; they are quoted here. Filter fragments are the operator's own SQL,
//! checked by the parser at load. Request values appear only as `$name` placeholders.

use std::time::Duration;

use chrono::{NaiveTime, TimeZone};
use datafusion::common::ScalarValue;

use super::{Bucket, Run};
use crate::config::{AggregateFn, AggregationRules, PanelConfig};
use crate::query::Params;
use crate::storage::TIME_COLUMN;

/// `name` as a quoted SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The time column a structured source reads (`columns.timestamp`, default `time`).
pub fn time_column(config: &PanelConfig) -> &str {
    config
        .data_source
        .as_ref()
        .and_then(|d| d.columns.as_ref())
        .and_then(|c| c.role("timestamp"))
        .unwrap_or(TIME_COLUMN)
}

/// A role's column, quoted.
pub fn role(config: &PanelConfig, role: &str) -> Option<String> {
    config
        .data_source
        .as_ref()
        .and_then(|d| d.columns.as_ref())
        .and_then(|c| c.role(role))
        .map(ident)
}

/// `FROM "table" WHERE time in range AND (operator filter) [AND extra...]`.
pub fn from_where(config: &PanelConfig, extra: &[String]) -> String {
    let table = config
        .data_source
        .as_ref()
        .map(|d| d.table.as_str())
        .unwrap_or_default();
    let ts = ident(time_column(config));
    let mut sql = format!("FROM {} WHERE {ts} >= $from AND {ts} < $to", ident(table));
    if let Some(filter) = config.clauses().and_then(|c| c.where_clause.as_deref()) {
        sql.push_str(&format!(" AND ({filter})"));
    }
    for condition in extra {
        sql.push_str(&format!(" AND {condition}"));
    }
    sql
}

/// `fn(value)` for an aggregate, ordered by time where the function needs it.
pub fn aggregate(function: AggregateFn, value: &str, ts: &str) -> String {
    match function {
        AggregateFn::Avg => format!("avg({value})"),
        AggregateFn::Min => format!("min({value})"),
        AggregateFn::Max => format!("max({value})"),
        AggregateFn::Sum => format!("sum({value})"),
        AggregateFn::Count => format!("count({value})"),
        AggregateFn::Last => format!("last_value({value} ORDER BY {ts})"),
        AggregateFn::P50 => format!("approx_percentile_cont({value}, 0.5)"),
        AggregateFn::P95 => format!("approx_percentile_cont({value}, 0.95)"),
        AggregateFn::P99 => format!("approx_percentile_cont({value}, 0.99)"),
    }
}

/// The panel's bucket rules: its own, else the tenant's (which fall back to the server's).
pub fn rules_for(run: &Run<'_>) -> AggregationRules {
    let mut rules = run.tenant.aggregation.clone();
    if let Some(agg) = &run.panel.config.aggregation {
        if let Some(own) = &agg.rules {
            rules.rules = own.clone();
        }
        if let Some(max) = agg.max_points_per_series {
            rules.max_points_per_series = max;
        }
    }
    rules
}

/// The bucket for this request: raw when the caller disabled aggregation.
pub fn bucket_for(run: &Run<'_>) -> Result<Bucket, super::ParamError> {
    if run.request.disable_aggregation()? {
        return Ok(Bucket::Raw);
    }
    Ok(rules_for(run).bucket_for(run.range.span()))
}

/// Local midnight (tenant timezone) of the day `from` falls on, as UTC nanoseconds: the origin
/// of `date_bin`, so hour and day buckets start on the tenant's clock.
pub fn origin_ns(from_ns: i64, tz: chrono_tz::Tz) -> i64 {
    let local = tz
        .timestamp_nanos(from_ns)
        .date_naive()
        .and_time(NaiveTime::MIN);
    tz.from_local_datetime(&local)
        .earliest()
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(0)
}

/// `$from`, `$to`, `$origin` and `$bucket` (1 ns when raw, so `date_bin` is the identity).
pub fn base_params(run: &Run<'_>, from_ns: i64, to_ns: i64, bucket: Bucket) -> Params {
    let every = match bucket {
        Bucket::Raw => Duration::from_nanos(1),
        Bucket::Every(d) => d,
    };
    let mut params = Params::new();
    params.insert(
        "from".into(),
        ScalarValue::TimestampNanosecond(Some(from_ns), None),
    );
    params.insert(
        "to".into(),
        ScalarValue::TimestampNanosecond(Some(to_ns), None),
    );
    params.insert(
        "origin".into(),
        ScalarValue::TimestampNanosecond(Some(origin_ns(from_ns, run.tenant.timezone)), None),
    );
    params.insert(
        "bucket".into(),
        ScalarValue::new_interval_mdn(0, 0, every.as_nanos().min(i64::MAX as u128) as i64),
    );
    params.extend(run.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(ident("cpu"), "\"cpu\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn origin_is_local_midnight() {
        // 2024-01-01T03:00Z is 08:30 in Kolkata; local midnight there is 2023-12-31T18:30Z.
        let from = 1_704_078_000_000_000_000;
        assert_eq!(
            origin_ns(from, chrono_tz::Asia::Kolkata),
            1_704_047_400_000_000_000
        );
        assert_eq!(origin_ns(from, chrono_tz::UTC), 1_704_067_200_000_000_000);
    }
}
