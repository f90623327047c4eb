//! The rows behind a panel, streamed for export: a timeseries' buckets (or raw rows when
//! aggregation is off — uncapped, unlike the panel answer), a table's filtered and sorted rows
//! without paging, a KPI's readings in the range, a health panel's services, a template's
//! `sql:` rows. Images have no rows.

use super::values::rfc3339;
use super::{PanelError, Run};
use crate::query::QueryOutput;

/// Starts the export stream: the kind's export query, uncapped.
pub async fn stream(run: &Run<'_>) -> Result<QueryOutput, PanelError> {
    let (sql, params) = run.kind()?.export_query(run).await?;
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
