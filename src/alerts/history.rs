//! The tenant's `alerts` table: every change of an alert instance and every event an event
//! rule noticed, one row each, pushed to open pages once written.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

use super::AlertError;
use super::state::{Labels, labels_key};
use crate::config::{AlertRule, DeclaredType, IngestConfig, TableConfig};
use crate::ingest::{BatchBuilder, Limits, Precision, Value as Cell, Write};
use crate::panels::{ALERTS_TABLE, PanelEngine};
use crate::storage::Store;

/// One change, as pushed to open pages.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEvent {
    pub tenant: String,
    pub rule: String,
    pub severity: String,
    pub state: &'static str,
    pub labels: Labels,
    pub message: String,
    pub at: i64,
}

/// Writes the tenant's `alerts` table and tells open pages.
pub struct History {
    tenants: Arc<Store>,
    panels: Arc<PanelEngine>,
    events: broadcast::Sender<AlertEvent>,
}

/// One row of the tenant's `alerts` table.
pub struct HistoryRow {
    pub state: &'static str,
    pub labels: Labels,
    pub message: String,
    pub value: Option<f64>,
}

/// `value` is a number even in a table whose first rows have none (a rule without data).
fn value_column() -> TableConfig {
    TableConfig {
        fields: [("value".to_string(), DeclaredType::Float)].into(),
        ..TableConfig::default()
    }
}

impl History {
    pub fn new(tenants: Arc<Store>, panels: Arc<PanelEngine>) -> Self {
        Self {
            tenants,
            panels,
            events: broadcast::channel(1024).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<AlertEvent> {
        self.events.subscribe()
    }

    /// Writes `rows` to the tenant's `alerts` table, then drops the cached answers of the
    /// panels that read it and pushes the rows to open pages — in that order, so a page that
    /// redraws on the push reads the new rows, not a cached answer from before them.
    pub async fn append(&self, tenant: &str, rule: &AlertRule, rows: Vec<HistoryRow>, now: i64) {
        if rows.is_empty() {
            return;
        }
        let fill = |b: &mut BatchBuilder| {
            for (line, row) in rows.iter().enumerate() {
                b.begin_row(line + 1);
                b.set("time", Cell::Int(now));
                b.set("rule", Cell::Str(rule.config.name.as_str().into()));
                b.set("severity", Cell::Str(rule.config.severity.as_str().into()));
                b.set("state", Cell::Str(row.state.into()));
                b.set("labels", Cell::Str(labels_key(&row.labels).into()));
                b.set("message", Cell::Str(row.message.as_str().into()));
                match row.value.filter(|v| v.is_finite()) {
                    Some(v) => b.set("value", Cell::Float(v)),
                    None => b.set("value", Cell::Null),
                }
                b.end_row();
            }
        };
        let result = async {
            let store = self.tenants.tenant(tenant).await?;
            let limits = Limits::from(&IngestConfig::default());
            let mut write =
                Write::system(store, ALERTS_TABLE, limits)?.with_columns(&value_column());
            write
                .rows(Precision::Milliseconds, fill)
                .map_err(|e| AlertError::History(e.to_string()))?;
            write.validated().append().await?;
            Ok::<_, AlertError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(%tenant, rule = %rule.config.name, error = %e, "cannot append to the alerts table");
        }
        self.panels.invalidate_live(tenant);
        for row in rows {
            let _ = self.events.send(AlertEvent {
                tenant: tenant.to_string(),
                rule: rule.config.name.clone(),
                severity: rule.config.severity.as_str().into(),
                state: row.state,
                labels: row.labels,
                message: row.message,
                at: now,
            });
        }
    }
}
