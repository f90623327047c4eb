//! Where a run ends up: a row in the tenant's `actions` table (time it started, run, action,
//! panel, target, actor, status, HTTP status, duration, attempts, error), an audit entry, and
//! the in-memory record status requests read. Runs are read back from the table by id.

use std::sync::Arc;
use std::time::Duration;

use datafusion::common::ScalarValue;
use serde_json::json;

use super::runs::{Run, RunStatus, Runs};
use super::send::Outcome;
use super::{ActionError, TABLE};
use crate::auth::{Actor, AuditEvent, Auth};
use crate::config::IngestConfig;
use crate::ingest::{Limits, Precision, Value as Cell, Write};
use crate::panels::values;
use crate::query::{Params, QueryEngine};
use crate::schema::{ColumnKind, FieldType};
use crate::storage::{Store, TenantStore};

pub struct Finish {
    pub store: Arc<Store>,
    pub auth: Arc<Auth>,
    pub runs: Arc<Runs>,
    pub actor: Actor,
}

impl Finish {
    pub async fn finish(&self, mut run: Run, outcome: Outcome, took: Duration) {
        run.status = if outcome.error.is_none() {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        run.attempts = outcome.attempts;
        run.http_status = outcome.http_status;
        run.error = outcome.error;
        run.duration_ms = Some(took.as_millis().min(i64::MAX as u128) as i64);
        if let Err(e) = self.append(&run).await {
            tracing::error!(tenant = %run.tenant, run = %run.run, error = %e, "cannot append to the actions table");
        }
        let details = json!({
            "run": run.run, "panel": run.panel, "action": run.action, "target": run.target,
            "http_status": run.http_status, "attempts": run.attempts, "error": run.error,
        });
        let event = match run.status {
            RunStatus::Succeeded => AuditEvent::ok("action.run", details),
            _ => AuditEvent::failed("action.run", details),
        };
        self.auth
            .audit(&self.actor, event.in_tenant(&run.tenant))
            .await;
        self.runs.finish(run);
    }

    async fn append(&self, run: &Run) -> Result<(), ActionError> {
        let store = self.store.tenant(&run.tenant).await?;
        let mut write = Write::system(store, TABLE, Limits::from(&IngestConfig::default()))?;
        let (tag, int) = (ColumnKind::Tag, ColumnKind::Field(FieldType::Integer));
        write.rows(Precision::Milliseconds, |b| {
            b.begin_row(1);
            b.set("time", Cell::Int(run.started_at));
            b.set("run", Cell::Str(run.run.as_str().into()));
            b.set_typed("action", tag, Cell::Str(run.action.as_str().into()));
            b.set_typed("panel", tag, Cell::Str(run.panel.as_str().into()));
            b.set_typed("target", tag, Cell::Str(run.target.as_str().into()));
            b.set_typed("status", tag, Cell::Str(run.status.as_str().into()));
            b.set("actor", Cell::Str(run.actor.as_str().into()));
            b.set("label", Cell::Str(run.label.as_str().into()));
            b.set_typed("attempts", int, Cell::Int(i64::from(run.attempts)));
            b.set_typed("duration_ms", int, Cell::Int(run.duration_ms.unwrap_or(0)));
            if let Some(status) = run.http_status {
                b.set_typed("http_status", int, Cell::Int(i64::from(status)));
            }
            if let Some(error) = &run.error {
                b.set("error", Cell::Str(error.as_str().into()));
            }
            b.end_row();
        })?;
        write.validated().append().await?;
        Ok(())
    }
}

/// Every column: `error` and `http_status` exist only once some run has set them.
const READ_SQL: &str =
    "SELECT *, CAST(time AS BIGINT) / 1000000 AS started_at FROM actions WHERE run = $run LIMIT 1";

/// Run `id` from the tenant's `actions` table, if it is there.
pub async fn read(
    engine: &QueryEngine,
    store: &Arc<TenantStore>,
    tenant: &str,
    id: &str,
) -> Result<Option<Run>, ActionError> {
    if store.table(TABLE).is_none() {
        return Ok(None);
    }
    let mut params = Params::new();
    params.insert("run".into(), ScalarValue::Utf8(Some(id.to_string())));
    let batches = engine.collect_with_params(store, READ_SQL, &params).await?;
    let names = values::column_names(&batches);
    let Some(row) = values::json_rows(&batches).into_iter().next() else {
        return Ok(None);
    };
    let cell = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .and_then(|i| row.get(i).cloned())
            .unwrap_or(serde_json::Value::Null)
    };
    let text = |name: &str| cell(name).as_str().unwrap_or_default().to_string();
    let number = |name: &str| {
        let value = cell(name);
        value.as_i64().or_else(|| value.as_f64().map(|f| f as i64))
    };
    Ok(Some(Run {
        run: text("run"),
        tenant: tenant.to_string(),
        panel: text("panel"),
        action: text("action"),
        label: text("label"),
        target: text("target"),
        actor: text("actor"),
        status: RunStatus::parse(&text("status")).unwrap_or(RunStatus::Failed),
        started_at: number("started_at").unwrap_or(0),
        duration_ms: number("duration_ms"),
        attempts: number("attempts").unwrap_or(0) as u32,
        http_status: number("http_status").map(|s| s as u16),
        error: cell("error").as_str().map(str::to_string),
    }))
}
