//! `health_status`: one row per service or device with its newest status, mapped through
//! `display.status_mapping`. A service whose newest row is older than `stale_after` (measured
//! from the end of the range, or now if that is earlier) is `unknown` and red: a device that
//! stopped reporting must not look healthy.
//!
//! Answer: `{panel, type, title, description, range, services: [{name, status, label, color,
//! last_checked, error, stale}], summary: {label: count}}`. A `sql:` panel returns columns
//! `service`, `status`, `time` and optionally `error`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::values::{has_column, texts, timestamps_ns};
use super::{Bucket, PanelError, Run, sqlgen};
use crate::config::StatusKey;

const UNKNOWN_COLOR: &str = "#EF4444";
const UNMAPPED_COLOR: &str = "#9CA3AF";
const LOOKBACK_NS: i64 = 7 * 86_400 * 1_000_000_000;

pub async fn run(run: &Run<'_>) -> Result<Value, PanelError> {
    let config = &run.panel.config;
    let (sql, params) = query(run);
    let batches = run.rows(&sql, &params).await?;
    let services = texts(&batches, "service")
        .ok_or_else(|| run.shape_error("the query must return a column `service`"))?;
    let statuses = texts(&batches, "status")
        .ok_or_else(|| run.shape_error("the query must return a column `status`"))?;
    let times = timestamps_ns(&batches, "time")
        .ok_or_else(|| run.shape_error("the query must return a timestamp column `time`"))?;
    let errors = if has_column(&batches, "error") {
        texts(&batches, "error").unwrap_or_default()
    } else {
        vec![]
    };
    let reference = run.range.to_ns.min(run.now_ns);
    let stale_ns = config
        .stale_after
        .map(|d| d.0.as_nanos().min(i64::MAX as u128) as i64);
    let unknown_color = config
        .display
        .unknown_color
        .clone()
        .unwrap_or_else(|| UNKNOWN_COLOR.into());
    let mut summary: BTreeMap<String, u64> = BTreeMap::new();
    let mut rows = vec![];
    for (i, name) in services.iter().enumerate() {
        let Some(name) = name else { continue };
        let status = statuses.get(i).cloned().flatten();
        let time = times.get(i).copied().flatten();
        let stale = match (stale_ns, time) {
            (Some(limit), Some(t)) => reference.saturating_sub(t) > limit,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let mapped = status
            .as_ref()
            .and_then(|s| config.display.status_mapping.get(&StatusKey(s.clone())));
        let (label, color) = match (stale, mapped) {
            (true, _) => ("unknown".to_string(), unknown_color.clone()),
            (false, Some(style)) => (style.label.clone(), style.color.clone()),
            (false, None) => (
                status.clone().unwrap_or_else(|| "unknown".into()),
                UNMAPPED_COLOR.to_string(),
            ),
        };
        *summary.entry(label.clone()).or_default() += 1;
        rows.push(json!({
            "name": name,
            "status": status,
            "label": label,
            "color": color,
            "last_checked": time.map(|t| t.div_euclid(1_000_000)),
            "error": errors.get(i).cloned().flatten(),
            "stale": stale,
        }));
    }
    let mut out = run.header();
    out.insert("services".into(), Value::Array(rows));
    out.insert("summary".into(), json!(summary));
    Ok(Value::Object(out))
}

/// The query behind the panel: each service's newest status, time and error.
pub(super) fn query(run: &Run<'_>) -> (String, crate::query::Params) {
    let config = &run.panel.config;
    // Look back at least a week, so a device that went silent before `from` still shows (as
    // unknown) instead of vanishing from the list.
    let from_ns = run
        .range
        .from_ns
        .min(run.range.to_ns.saturating_sub(LOOKBACK_NS));
    let params = sqlgen::base_params(run, from_ns, run.range.to_ns, Bucket::Raw);
    let sql = match &config.sql {
        Some(sql) => sql.clone(),
        None => {
            let ts = sqlgen::ident(sqlgen::time_column(config));
            let service = sqlgen::role(config, "service_name").unwrap_or_else(|| "NULL".into());
            let status = sqlgen::role(config, "status_value").unwrap_or_else(|| "NULL".into());
            let error = sqlgen::role(config, "error_message")
                .map(|e| format!(", last_value({e} ORDER BY {ts}) AS error"))
                .unwrap_or_default();
            format!(
                "SELECT {service} AS service, last_value({status} ORDER BY {ts}) AS status, \
                 max({ts}) AS time{error} {} GROUP BY {service} ORDER BY {service}",
                sqlgen::from_where(config, &[])
            )
        }
    };
    (sql, params)
}
