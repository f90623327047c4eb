//! Alert state in the central database: instances (so a restart neither re-sends nor forgets),
//! silences, the delivery log and in-app notifications.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::AlertError;
use super::matcher::Matchers;
use super::state::{AlertState, Instance, Labels, labels_key};
use crate::db::Db;

/// A stored instance with the rule it belongs to (for pages and the API).
#[derive(Debug, Clone, Serialize)]
pub struct StoredInstance {
    pub rule: String,
    pub severity: String,
    pub labels: Labels,
    pub state: AlertState,
    pub since: i64,
    pub value: Option<f64>,
    pub message: String,
    pub fired_at: Option<i64>,
    pub acked_by: Option<String>,
    pub acked_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Silence {
    pub id: i64,
    pub matchers: Matchers,
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_by: String,
    pub comment: String,
}

impl Silence {
    /// Active at `now`, and every matcher holds for the alert (`alertname` is the rule).
    pub fn covers(&self, rule: &str, labels: &Labels, now: i64) -> bool {
        self.starts_at <= now && now < self.ends_at && self.matchers.covers(rule, labels)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub at: i64,
    pub channel: String,
    pub kind: String,
    pub alerts: i64,
    pub attempts: i64,
    pub outcome: String,
    pub error: String,
}

pub(super) fn labels_of(text: &str) -> Labels {
    serde_json::from_str(text).unwrap_or_default()
}

fn instance_of(r: &AnyRow) -> Result<StoredInstance, sqlx::Error> {
    let labels: String = r.try_get("labels")?;
    let state: String = r.try_get("state")?;
    Ok(StoredInstance {
        rule: r.try_get("rule")?,
        severity: r.try_get("severity")?,
        labels: labels_of(&labels),
        state: AlertState::parse(&state),
        since: r.try_get("since")?,
        value: r.try_get("value")?,
        message: r.try_get("message")?,
        fired_at: r.try_get("fired_at")?,
        acked_by: r.try_get("acked_by")?,
        acked_at: r.try_get("acked_at")?,
    })
}

#[derive(Clone)]
pub struct AlertStore {
    pub(super) db: Db,
}

impl AlertStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// A rule's instances, keyed by label set.
    pub async fn instances(&self, tenant: &str, rule: &str) -> Result<Vec<Instance>, AlertError> {
        let rows = sqlx::query(
            "SELECT rule, severity, labels, state, since, value, message, fired_at, last_notified, \
             acked_by, acked_at FROM alert_instances WHERE tenant = $1 AND rule = $2",
        )
        .bind(tenant)
        .bind(rule)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let s = instance_of(r)?;
                Ok(Instance {
                    labels: s.labels,
                    state: s.state,
                    since: s.since,
                    value: s.value,
                    message: s.message,
                    fired_at: s.fired_at,
                    last_notified: r.try_get("last_notified")?,
                    acked_by: s.acked_by,
                    acked_at: s.acked_at,
                })
            })
            .collect()
    }

    /// Stores a rule's changed instances in one transaction (one sync to disk, not one per
    /// instance). An acknowledgement is the user's, not the evaluator's: while an instance stays
    /// firing the stored one is kept, even if it arrived during this evaluation.
    pub async fn save(
        &self,
        tenant: &str,
        rule: &str,
        severity: &str,
        instances: &[&Instance],
        now: i64,
    ) -> Result<(), AlertError> {
        if instances.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.pool.begin().await?;
        for i in instances {
            sqlx::query(
                "INSERT INTO alert_instances (tenant, rule, labels, state, since, last_eval, value, message, \
                 severity, fired_at, last_notified, acked_by, acked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL) \
                 ON CONFLICT (tenant, rule, labels) DO UPDATE SET state = excluded.state, since = excluded.since, \
                 last_eval = excluded.last_eval, value = excluded.value, message = excluded.message, \
                 severity = excluded.severity, fired_at = excluded.fired_at, last_notified = excluded.last_notified, \
                 acked_by = CASE WHEN excluded.state = 'firing' AND alert_instances.state = 'firing' \
                     THEN alert_instances.acked_by END, \
                 acked_at = CASE WHEN excluded.state = 'firing' AND alert_instances.state = 'firing' \
                     THEN alert_instances.acked_at END",
            )
            .bind(tenant)
            .bind(rule)
            .bind(labels_key(&i.labels))
            .bind(i.state.as_str())
            .bind(i.since)
            .bind(now)
            .bind(i.value)
            .bind(&i.message)
            .bind(severity)
            .bind(i.fired_at)
            .bind(i.last_notified)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Instances not inactive, for the alerts page and panel: firing first.
    pub async fn active(&self, tenant: &str) -> Result<Vec<StoredInstance>, AlertError> {
        let rows = sqlx::query(
            "SELECT rule, severity, labels, state, since, value, message, fired_at, acked_by, acked_at \
             FROM alert_instances WHERE tenant = $1 AND state <> 'inactive' ORDER BY state, since DESC",
        )
        .bind(tenant)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(instance_of).collect::<Result<_, _>>()?)
    }

    /// Records who acknowledged a firing instance; false when it is not firing.
    pub async fn acknowledge(
        &self,
        tenant: &str,
        rule: &str,
        labels: &Labels,
        who: &str,
        now: i64,
    ) -> Result<bool, AlertError> {
        let done = sqlx::query(
            "UPDATE alert_instances SET acked_by = $1, acked_at = $2 \
             WHERE tenant = $3 AND rule = $4 AND labels = $5 AND state = 'firing'",
        )
        .bind(who)
        .bind(now)
        .bind(tenant)
        .bind(rule)
        .bind(labels_key(labels))
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn add_silence(
        &self,
        tenant: &str,
        matchers: &Matchers,
        starts_at: i64,
        ends_at: i64,
        who: &str,
        comment: &str,
    ) -> Result<i64, AlertError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO alert_silences (tenant, matchers, starts_at, ends_at, created_by, comment) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(tenant)
        .bind(serde_json::to_string(matchers).map_err(|e| AlertError::Invalid(e.to_string()))?)
        .bind(starts_at)
        .bind(ends_at)
        .bind(who)
        .bind(comment)
        .fetch_one(&self.db.pool)
        .await?)
    }

    /// Ends a silence now; false when the tenant has no such silence.
    pub async fn expire_silence(
        &self,
        tenant: &str,
        id: i64,
        now: i64,
    ) -> Result<bool, AlertError> {
        let done = sqlx::query(
            "UPDATE alert_silences SET ends_at = $1 WHERE tenant = $2 AND id = $3 AND ends_at > $4",
        )
        .bind(now)
        .bind(tenant)
        .bind(id)
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Silences not yet ended.
    pub async fn silences(&self, tenant: &str, now: i64) -> Result<Vec<Silence>, AlertError> {
        let rows = sqlx::query(
            "SELECT id, matchers, starts_at, ends_at, created_by, comment FROM alert_silences \
             WHERE tenant = $1 AND ends_at > $2 ORDER BY ends_at",
        )
        .bind(tenant)
        .bind(now)
        .fetch_all(&self.db.pool)
        .await?;
        let mut silences = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let text: String = r.try_get("matchers")?;
            // A silence whose matchers cannot be read must not silence everything.
            let matchers = match serde_json::from_str::<Matchers>(&text) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(tenant, id, error = %e, "skipping a silence with unreadable matchers");
                    continue;
                }
            };
            silences.push(Silence {
                id,
                matchers,
                starts_at: r.try_get("starts_at")?,
                ends_at: r.try_get("ends_at")?,
                created_by: r.try_get("created_by")?,
                comment: r.try_get("comment")?,
            });
        }
        Ok(silences)
    }

    pub async fn log_delivery(&self, tenant: &str, d: &Delivery) -> Result<(), AlertError> {
        sqlx::query(
            "INSERT INTO alert_deliveries (tenant, at, channel, kind, alerts, attempts, outcome, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(tenant)
        .bind(d.at)
        .bind(&d.channel)
        .bind(&d.kind)
        .bind(d.alerts)
        .bind(d.attempts)
        .bind(&d.outcome)
        .bind(&d.error)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn deliveries(&self, tenant: &str, limit: i64) -> Result<Vec<Delivery>, AlertError> {
        let rows = sqlx::query(
            "SELECT at, channel, kind, alerts, attempts, outcome, error FROM alert_deliveries \
             WHERE tenant = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Delivery {
                    at: r.try_get("at")?,
                    channel: r.try_get("channel")?,
                    kind: r.try_get("kind")?,
                    alerts: r.try_get("alerts")?,
                    attempts: r.try_get("attempts")?,
                    outcome: r.try_get("outcome")?,
                    error: r.try_get("error")?,
                })
            })
            .collect()
    }
}
