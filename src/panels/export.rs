//! The rows behind a panel, streamed for export: a timeseries' buckets (or raw rows when
//! aggregation is off — uncapped, unlike the panel answer), a table's filtered and sorted rows
//! without paging, a KPI's readings in the range, a health panel's services, a template's
//! `sql:` rows. Images have no rows.

use super::values::rfc3339;
use super::{Bucket, PanelError, Run, health, sqlgen, table, timeseries};
use crate::config::PanelType;
use crate::query::{Params, QueryOutput};

/// The query to stream for `run`'s panel.
pub async fn query(run: &Run<'_>) -> Result<(String, Params), PanelError> {
    let config = &run.panel.config;
    match config.kind {
        PanelType::Timeseries => {
            let (sql, params, _, _) = timeseries::query(run, None)?;
            Ok((sql, params))
        }
        PanelType::Table => {
            let plan = table::plan(run).await?;
            Ok((plan.all_rows_sql(), plan.params))
        }
        PanelType::HealthStatus => Ok(health::query(run)),
        PanelType::Alerts => Ok(super::alerts::query(run)),
        PanelType::Kpi => {
            let params = sqlgen::base_params(run, run.range.from_ns, run.range.to_ns, Bucket::Raw);
            let sql = match &config.sql {
                Some(sql) => sql.clone(),
                None => {
                    let ts = sqlgen::ident(sqlgen::time_column(config));
                    let value = sqlgen::role(config, "value").unwrap_or_else(|| "NULL".into());
                    format!(
                        "SELECT {ts} AS time, {value} AS value {} ORDER BY {ts}",
                        sqlgen::from_where(config, &[])
                    )
                }
            };
            Ok((sql, params))
        }
        PanelType::CustomTemplate if config.sql.is_some() => {
            let params = sqlgen::base_params(run, run.range.from_ns, run.range.to_ns, Bucket::Raw);
            Ok((config.sql.clone().unwrap_or_default(), params))
        }
        kind => Err(PanelError::NotExportable {
            panel: run.panel.id.clone(),
            kind: kind.name(),
        }),
    }
}

/// Starts the export stream.
pub async fn stream(run: &Run<'_>) -> Result<QueryOutput, PanelError> {
    let (sql, params) = query(run).await?;
    run.engine
        .execute_with_params(run.store, &sql, &params)
        .await
        .map_err(|source| PanelError::Query {
            panel: run.panel.id.clone(),
            source,
        })
}

/// `{tenant}-{panel}-{from}-{to}` with compact UTC times (`20240101T000000Z`).
pub fn file_stem(run: &Run<'_>) -> String {
    let compact = |ns: i64| {
        rfc3339(ns)
            .chars()
            .take(19)
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            + "Z"
    };
    // Panel ids are file stems; anything but [A-Za-z0-9._-] becomes `_` so the name is a safe
    // header value and file name.
    let safe = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!(
        "{}-{}-{}-{}",
        safe(&run.tenant.tenant),
        safe(&run.panel.id),
        compact(run.range.from_ns),
        compact(run.range.to_ns)
    )
}
