//! Usage kept per tenant over time: every `metering.interval` each node writes what its
//! counters grew by into the tenant's `opsboard_usage` system table (one row per metric, table
//! and protocol, tagged with the node), so a tenant's admins and the global admin chart usage
//! and bills with plain SQL and panels. Each pass also measures the tenant's stored bytes (for
//! `quotas.storage_bytes`), reads back today's rows across every node (for
//! `quotas.rows_per_day`), and — on the node that runs the tenant's alert rules — sends a
//! `QuotaWarning` through the tenant's alert routes the first time in a UTC day a quota
//! reaches 80 %.

mod rows;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array};
use parking_lot::Mutex;

use crate::alerts::{AlertEngine, Change, Outgoing};
use crate::cluster::Leases;
use crate::config::{DeclaredType, IngestConfig, TableConfig};
use crate::ingest::{BatchBuilder, Limits, Precision, Value as Cell, Write};
use crate::query::QueryEngine;
use crate::storage::{Store, TenantStore};
use crate::usage::{Counter, QuotaKind, USAGE_TABLE};
pub use rows::{Seen, UsageRow, grown};

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, thiserror::Error)]
pub enum MeteringError {
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Ingest(#[from] crate::ingest::IngestError),
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
}

/// The columns of `opsboard_usage`: tags, then the amount.
/// A tag cell: null when there is nothing to name.
fn text(s: &str) -> Cell<'_> {
    if s.is_empty() {
        Cell::Null
    } else {
        Cell::Str(s.into())
    }
}

fn usage_columns() -> TableConfig {
    TableConfig {
        tags: ["node", "metric", "source_table", "protocol"]
            .map(String::from)
            .to_vec(),
        fields: [("value".to_string(), DeclaredType::Float)].into(),
        ..TableConfig::default()
    }
}

/// Writes usage rows, learns today's totals and warns; one per server.
pub struct Recorder {
    store: Arc<Store>,
    engine: Arc<QueryEngine>,
    alerts: Arc<AlertEngine>,
    leases: Arc<Leases>,
    /// What each tenant's counters were at its last recording that was written.
    recorded: Mutex<HashMap<String, Seen>>,
    /// The UTC day each (tenant, quota) was last warned about.
    warned: Mutex<HashMap<(String, QuotaKind), i64>>,
}

impl Recorder {
    pub fn new(
        store: Arc<Store>,
        engine: Arc<QueryEngine>,
        alerts: Arc<AlertEngine>,
        leases: Arc<Leases>,
    ) -> Self {
        Self {
            store,
            engine,
            alerts,
            leases,
            recorded: Mutex::default(),
            warned: Mutex::default(),
        }
    }

    /// One pass over every tenant: rows stamped `stamp_ms` (the start of the interval they
    /// cover), counters read at `now_ms`.
    pub async fn record(&self, stamp_ms: i64, now_ms: i64) {
        for tenant in self.store.opened_tenants() {
            if let Err(e) = self.record_tenant(&tenant, stamp_ms, now_ms).await {
                tracing::warn!(tenant = %tenant.name, error = %e, "cannot record usage; the growth is recorded with the next pass");
            }
        }
    }

    /// At start, before requests are taken: each tenant with `quotas.rows_per_day` learns
    /// today's rows from the usage table, so a restart does not open a new day's allowance.
    pub async fn learn_rows_today(&self, now_ms: i64) {
        for tenant in self.store.opened_tenants() {
            if tenant.quotas().rows_per_day.is_none() {
                continue;
            }
            let counted = tenant.usage().snapshot(now_ms).1;
            match self.rows_today(&tenant, now_ms).await {
                Ok(today) => tenant.usage().learn_rows_today(today, counted, now_ms),
                Err(e) => {
                    tracing::warn!(tenant = %tenant.name, error = %e, "cannot read today's rows; learned at the next recording")
                }
            }
        }
    }

    async fn record_tenant(
        &self,
        tenant: &Arc<TenantStore>,
        stamp_ms: i64,
        now_ms: i64,
    ) -> Result<(), MeteringError> {
        let usage = tenant.usage().clone();
        let stored = tenant.stored_bytes().await?;
        usage.set_stored(stored);
        let (ingested, counted_today) = usage.snapshot(now_ms);
        let now = Seen {
            ingested,
            counters: Counter::ALL.map(|c| usage.get(c)),
            stored: Some(stored),
        };
        let before = self
            .recorded
            .lock()
            .get(&tenant.name)
            .cloned()
            .unwrap_or_default();
        let rows = grown(&before, &now);
        self.write(tenant, stamp_ms, &rows).await?;
        // Only once written: a failed write leaves the growth for the next pass.
        self.recorded.lock().insert(tenant.name.clone(), now);
        let today = self.rows_today(tenant, now_ms).await?;
        usage.learn_rows_today(today, counted_today, now_ms);
        if self.leases.owns(&tenant.name) {
            self.warn(tenant, now_ms).await;
        }
        Ok(())
    }

    async fn write(
        &self,
        tenant: &Arc<TenantStore>,
        stamp_ms: i64,
        rows: &[UsageRow],
    ) -> Result<(), MeteringError> {
        if rows.is_empty() {
            return Ok(());
        }
        let node = self.leases.node().to_string();
        let fill = |b: &mut BatchBuilder| {
            for (line, row) in rows.iter().enumerate() {
                b.begin_row(line + 1);
                b.set("time", Cell::Int(stamp_ms));
                b.set("node", Cell::Str(node.as_str().into()));
                b.set("metric", Cell::Str(row.metric.into()));
                b.set("source_table", text(&row.table));
                b.set("protocol", text(row.protocol));
                b.set("value", Cell::Float(row.value));
                b.end_row();
            }
        };
        let limits = Limits::from(&IngestConfig::default());
        let mut write =
            Write::system(tenant.clone(), USAGE_TABLE, limits)?.with_columns(&usage_columns());
        write.rows(Precision::Milliseconds, fill)?;
        write.validated().append().await?;
        Ok(())
    }

    /// Rows written into the tenant today (UTC) as the usage table has them, every node's.
    async fn rows_today(
        &self,
        tenant: &Arc<TenantStore>,
        now_ms: i64,
    ) -> Result<u64, MeteringError> {
        if tenant.table(USAGE_TABLE).is_none() {
            return Ok(0);
        }
        let midnight = chrono::DateTime::from_timestamp_millis(now_ms - now_ms.rem_euclid(DAY_MS))
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ");
        let sql = format!(
            "SELECT sum(value) AS n FROM {USAGE_TABLE} \
             WHERE metric = 'ingested_rows' AND time >= '{midnight}'"
        );
        let batches = self.engine.collect(tenant, &sql).await?;
        let total = batches
            .iter()
            .filter(|b| b.num_rows() > 0)
            .find_map(|b| {
                let column = b.column(0);
                if let Some(f) = column.as_any().downcast_ref::<Float64Array>() {
                    Some(if f.is_null(0) { 0.0 } else { f.value(0) })
                } else {
                    column
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .map(|i| if i.is_null(0) { 0.0 } else { i.value(0) as f64 })
                }
            })
            .unwrap_or(0.0);
        Ok(total.max(0.0) as u64)
    }

    /// The first time today a quota is at 80 % or more: one `QuotaWarning` to the tenant's
    /// alert routes.
    async fn warn(&self, tenant: &TenantStore, now_ms: i64) {
        let quotas = tenant.quotas();
        let usage = tenant.usage();
        let stored = usage.stored().map(|s| s.total()).unwrap_or(0);
        let checks = [
            (
                QuotaKind::RowsPerDay,
                usage.rows_today(now_ms),
                quotas.rows_per_day,
            ),
            (QuotaKind::StorageBytes, stored, quotas.storage_bytes),
            (
                QuotaKind::QueriesPerMinute,
                usage.take_query_peak(),
                quotas.queries_per_minute,
            ),
        ];
        let day = now_ms.div_euclid(DAY_MS);
        for (kind, used, limit) in checks {
            let Some(limit) = limit else { continue };
            if u128::from(used) * 5 < u128::from(limit) * 4 {
                continue;
            }
            let key = (tenant.name.clone(), kind);
            if self.warned.lock().get(&key) == Some(&day) {
                continue;
            }
            let alert = quota_warning(kind, used, limit, now_ms);
            // Marked only once sent: a configuration that has not loaded yet is tried again.
            if self.alerts.notify(&tenant.name, alert).await.is_some() {
                tracing::info!(tenant = %tenant.name, quota = kind.name(), used, limit, "quota at 80 %; warning sent");
                self.warned.lock().insert(key, day);
            }
        }
    }
}

/// The notice for a quota at 80 % or more of its limit.
fn quota_warning(kind: QuotaKind, used: u64, limit: u64, now_ms: i64) -> Outgoing {
    let percent = (u128::from(used) * 100 / u128::from(limit.max(1))) as u64;
    let message = format!(
        "{percent} % of quotas.{} used ({used} of {limit}); past it, {} are refused with 429",
        kind.name(),
        if kind == QuotaKind::QueriesPerMinute {
            "queries"
        } else {
            "writes"
        }
    );
    let labels = [
        ("alertname", "QuotaWarning"),
        ("severity", "warning"),
        ("quota", kind.name()),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    Outgoing {
        rule: "QuotaWarning".into(),
        severity: "warning".into(),
        labels,
        annotations: [("summary".to_string(), message.clone())].into(),
        message,
        change: Change::Firing,
        starts_at: now_ms,
        ends_at: None,
        value: Some(used as f64),
        panel: None,
        repeat_ms: DAY_MS,
        event: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_names_the_quota_and_its_use() {
        let w = quota_warning(QuotaKind::RowsPerDay, 850, 1_000, 5);
        assert_eq!(w.labels["alertname"], "QuotaWarning");
        assert_eq!(w.labels["quota"], "rows_per_day");
        assert!(
            w.message
                .starts_with("85 % of quotas.rows_per_day used (850 of 1000)"),
            "{}",
            w.message
        );
        assert!(
            w.message.ends_with("writes are refused with 429"),
            "{}",
            w.message
        );
    }
}
