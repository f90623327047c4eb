//! `health_status`: one row per service or device with its newest status, mapped through
//! `display.status_mapping`. A service whose newest row is older than `stale_after` (measured
//! from the end of the range, or now if that is earlier) is `unknown` and red: a device that
//! stopped reporting must not look healthy.
//!
//! Answer: `{panel, type, title, description, range, services: [{name, status, label, color,
//! last_checked, error, stale}], summary: {label: count}}`. A `sql:` panel returns columns
//! `service`, `status`, `time` and optionally `error`.

mod fragment;

use std::collections::BTreeMap;

use arrow::record_batch::RecordBatch;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::answer::Header;
use super::kind::{KindSpec, Source};
use super::kinds::{PanelAnswer, PanelKind};
use super::values::{has_column, texts, timestamps_ns};
use super::{Bucket, PanelError, Run, newest, sqlgen};
use crate::clock::{Timestamp, epoch_ms};
use crate::config::StatusKey;
use crate::query::Params;

const UNKNOWN_COLOR: &str = "#EF4444";
const UNMAPPED_COLOR: &str = "#9CA3AF";
const LOOKBACK_NS: i64 = 7 * 86_400 * 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthAnswer {
    #[serde(flatten)]
    pub header: Header,
    pub services: Vec<ServiceHealth>,
    /// How many services show each label.
    pub summary: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceHealth {
    pub name: String,
    /// The newest status as stored.
    pub status: Option<String>,
    /// The status through `status_mapping` (`unknown` when stale).
    pub label: String,
    pub color: String,
    #[serde(with = "epoch_ms::option")]
    pub last_checked: Option<Timestamp>,
    pub error: Option<String>,
    pub stale: bool,
    /// The entity page this entry opens (`display.link`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

pub struct Health;

static SPEC: KindSpec = KindSpec {
    name: "health_status",
    default_size: (4, 1),
    source: Source::Roles {
        roles: &["service_name", "status_value", "timestamp", "error_message"],
        required: &["service_name", "status_value"],
        numeric_value: false,
    },
    sql_columns: &["service", "status", "time"],
    display_keys: &["status_mapping", "unknown_color", "link"],
    stale_after: true,
    ..KindSpec::PLAIN
};

#[async_trait]
impl PanelKind for Health {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn run(&self, run: &Run<'_>) -> Result<PanelAnswer, PanelError> {
        answer(run).await.map(PanelAnswer::HealthStatus)
    }

    async fn export_query(&self, run: &Run<'_>) -> Result<(String, Params), PanelError> {
        Ok(query(run, None))
    }
}

async fn answer(run: &Run<'_>) -> Result<HealthAnswer, PanelError> {
    let config = &run.panel.config;
    let batches = match newest_rows(run).await? {
        Some(batches) => batches,
        None => {
            let (sql, params) = query(run, None);
            run.rows(&sql, &params).await?
        }
    };
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
        let link = match &run.panel.config.display.link {
            None => None,
            Some(link) => {
                let context =
                    serde_json::json!({"row": {"name": name, "status": status, "label": label}});
                let url = super::links::to_dashboard(run, link, &context)
                    .map_err(|m| super::links::link_error(run, "display", &m))?;
                Some(url)
            }
        };
        rows.push(ServiceHealth {
            name: name.clone(),
            status,
            label,
            color,
            last_checked: time.map(Timestamp::from_ns),
            error: errors.get(i).cloned().flatten(),
            stale,
            link,
        });
    }
    Ok(HealthAnswer {
        header: run.header(),
        services: rows,
        summary,
    })
}

/// The answer from the storage layer's newest row of every series (`last_rows`), without a
/// scan of the week looked back, when [`newest::source`] allows it and no row is newer than
/// the range's end. The newest row of a service is the newest of its series' newest rows, so
/// grouping those by service gives what the scan gives.
async fn newest_rows(run: &Run<'_>) -> Result<Option<Vec<RecordBatch>>, PanelError> {
    let Some(table) = newest::source(run) else {
        return Ok(None);
    };
    let (sql, params) = query(run, Some(table));
    let batches = run.rows(&sql, &params).await?;
    let newer = timestamps_ns(&batches, "time")
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .any(|t| t >= run.range.to_ns);
    Ok((!newer).then_some(batches))
}

/// The query behind the panel: each service's newest status, time and error — from the newest
/// rows of `newest_of`'s series when given, else from the table's rows of the range.
fn query(run: &Run<'_>, newest_of: Option<&str>) -> (String, Params) {
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
            let from = match newest_of {
                Some(table) => newest::from_where(run, table),
                None => sqlgen::from_where(config, &[]),
            };
            format!(
                "SELECT {service} AS service, last_value({status} ORDER BY {ts}) AS status, \
                 max({ts}) AS time{error} {from} GROUP BY {service} ORDER BY {service}"
            )
        }
    };
    (sql, params)
}
