//! `alerts`: the tenant's alerts that are not at rest — firing, pending, without data or in
//! error — read from the tenant's `alerts` table (every state change the evaluator made), so a
//! dashboard shows them like any other data; no data source to configure.
//!
//! Answer: `{panel, type, title, description, range, alerts: [{rule, severity, state, labels,
//! labels_text, value, message, since}], counts: {state: n}, changes_in_range}`. Export: the
//! changes in the range.

mod fragment;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::answer::Header;
use super::kind::KindSpec;
use super::kinds::{PanelAnswer, PanelKind};
use super::values::{floats, texts, timestamps_ns};
use super::{Bucket, PanelError, Run, sqlgen};
use crate::clock::Timestamp;
use crate::query::Params;

pub const TABLE: &str = crate::schema::SYSTEM_TABLES[0];

/// The newest change of every rule × label set, kept when it is not at rest.
const ACTIVE_SQL: &str = "SELECT rule, severity, state, labels, value, message, time AS since FROM \
     (SELECT *, row_number() OVER (PARTITION BY rule, labels ORDER BY time DESC) AS newest FROM alerts) \
     WHERE newest = 1 AND state IN ('firing', 'pending', 'nodata', 'error') \
     ORDER BY CASE state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END, \
     CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, since DESC";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsAnswer {
    #[serde(flatten)]
    pub header: Header,
    pub alerts: Vec<ActiveAlert>,
    /// Active alerts per state.
    pub counts: BTreeMap<String, u64>,
    pub changes_in_range: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveAlert {
    pub rule: String,
    pub severity: String,
    pub state: String,
    pub labels: BTreeMap<String, String>,
    /// `k=v, …` without the evaluator's own `__` labels.
    pub labels_text: String,
    pub value: Option<f64>,
    pub message: Option<String>,
    pub since: Option<Timestamp>,
}

pub struct Alerts;

static SPEC: KindSpec = KindSpec {
    name: "alerts",
    live: true,
    ..KindSpec::PLAIN
};

#[async_trait]
impl PanelKind for Alerts {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn run(&self, run: &Run<'_>) -> Result<PanelAnswer, PanelError> {
        answer(run).await.map(PanelAnswer::Alerts)
    }

    async fn export_query(&self, run: &Run<'_>) -> Result<(String, Params), PanelError> {
        Ok(changes_query(run))
    }
}

/// The changes within the range, oldest first (export and the count).
fn changes_query(run: &Run<'_>) -> (String, Params) {
    let params = sqlgen::base_params(run, run.range.from_ns, run.range.to_ns, Bucket::Raw);
    let sql = "SELECT time, rule, severity, state, labels, value, message FROM alerts \
               WHERE time >= $from AND time < $to ORDER BY time"
        .to_string();
    (sql, params)
}

async fn answer(run: &Run<'_>) -> Result<AlertsAnswer, PanelError> {
    let mut alerts = vec![];
    let mut changes = 0;
    // Before the first state change there is no table, and nothing to show.
    if run.store.table(TABLE).is_some() {
        let batches = run.rows(ACTIVE_SQL, &Params::new()).await?;
        let text = |name| texts(&batches, name).unwrap_or_default();
        let (rules, severities, states) = (text("rule"), text("severity"), text("state"));
        let (labels, messages) = (text("labels"), text("message"));
        let values = floats(&batches, "value").unwrap_or_default();
        let since = timestamps_ns(&batches, "since").unwrap_or_default();
        for (i, rule) in rules.into_iter().enumerate() {
            let labels: BTreeMap<String, String> = labels
                .get(i)
                .cloned()
                .flatten()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            let labels_text: Vec<String> = labels
                .iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            alerts.push(ActiveAlert {
                rule: rule.unwrap_or_default(),
                severity: severities.get(i).cloned().flatten().unwrap_or_default(),
                state: states.get(i).cloned().flatten().unwrap_or_default(),
                labels_text: labels_text.join(", "),
                labels,
                value: values.get(i).copied().flatten().filter(|v| v.is_finite()),
                message: messages.get(i).cloned().flatten(),
                since: since.get(i).copied().flatten().map(Timestamp::from_ns),
            });
        }
        let (sql, params) = changes_query(run);
        changes = run
            .rows(&sql, &params)
            .await?
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>();
    }
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for a in &alerts {
        *counts.entry(a.state.clone()).or_default() += 1;
    }
    Ok(AlertsAnswer {
        header: run.header(),
        alerts,
        counts,
        changes_in_range: changes,
    })
}
