//! `alerts`: the tenant's alerts that are not at rest — firing, pending, without data or in
//! error — read from the tenant's `alerts` table (every state change the evaluator made), so a
//! dashboard shows them like any other data; no data source to configure.
//!
//! Answer: `{panel, type, title, description, range, alerts: [{rule, severity, state, labels,
//! value, message, since}], counts: {state: n}, changes_in_range}`. Export: the changes in the
//! range.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::values::{column_names, json_rows};
use super::{Bucket, PanelError, Run, sqlgen};
use crate::query::Params;

pub const TABLE: &str = "alerts";

/// The newest change of every rule × label set, kept when it is not at rest.
const ACTIVE_SQL: &str = "SELECT rule, severity, state, labels, value, message, time AS since FROM \
     (SELECT *, row_number() OVER (PARTITION BY rule, labels ORDER BY time DESC) AS newest FROM alerts) \
     WHERE newest = 1 AND state IN ('firing', 'pending', 'nodata', 'error') \
     ORDER BY CASE state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END, \
     CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, since DESC";

/// The changes within the range, oldest first (export and the count).
pub fn query(run: &Run<'_>) -> (String, Params) {
    let params = sqlgen::base_params(run, run.range.from_ns, run.range.to_ns, Bucket::Raw);
    let sql = "SELECT time, rule, severity, state, labels, value, message FROM alerts \
               WHERE time >= $from AND time < $to ORDER BY time"
        .to_string();
    (sql, params)
}

pub async fn run(run: &Run<'_>) -> Result<Value, PanelError> {
    let mut alerts = vec![];
    let mut changes = 0;
    // Before the first state change there is no table, and nothing to show.
    if run.store.table(TABLE).is_some() {
        let batches = run.rows(ACTIVE_SQL, &Params::new()).await?;
        let columns = column_names(&batches);
        for row in json_rows(&batches) {
            let mut a: serde_json::Map<String, Value> = columns.iter().cloned().zip(row).collect();
            let labels: BTreeMap<String, String> = a
                .get("labels")
                .and_then(Value::as_str)
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default();
            let text: Vec<String> = labels
                .iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            a.insert("labels".into(), json!(labels));
            a.insert("labels_text".into(), json!(text.join(", ")));
            alerts.push(Value::Object(a));
        }
        let (sql, params) = query(run);
        changes = run
            .rows(&sql, &params)
            .await?
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>();
    }
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for a in &alerts {
        *counts
            .entry(a["state"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    let mut answer = run.header();
    answer.insert("alerts".into(), json!(alerts));
    answer.insert("counts".into(), json!(counts));
    answer.insert("changes_in_range".into(), json!(changes));
    Ok(Value::Object(answer))
}
