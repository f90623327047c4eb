//! Links to entity pages: a table column's `link:` points each cell, and a health list's
//! `display.link` each entry, at another dashboard of the tenant, its variables filled from the
//! row (`{{ row.vm }}`) and the request's time range kept — the way from a fleet to one entity.
//! An `attachment` column's cells link to their files.

use serde_json::{Map, Value, json};

use super::{PanelError, Run};
use crate::config::{RowLink, TableColumn};
use crate::render::render_text;
use crate::storage::is_attachment_id;

/// For each row, each column's link (or none): a column's `link:` to a dashboard, or an
/// `attachment` column's file; empty when no column links.
pub fn of_rows(
    run: &Run<'_>,
    columns: &[TableColumn],
    rows: &[Vec<Value>],
) -> Result<Vec<Vec<Option<String>>>, PanelError> {
    let files = attachment_columns(run);
    if columns
        .iter()
        .all(|c| c.link.is_none() && !files.contains(&c.name))
    {
        return Ok(vec![]);
    }
    rows.iter()
        .map(|row| {
            let object: Map<String, Value> = columns
                .iter()
                .map(|c| c.name.clone())
                .zip(row.iter().cloned())
                .collect();
            let context = json!({ "row": object });
            columns
                .iter()
                .zip(row)
                .map(|(c, cell)| match &c.link {
                    Some(link) => to_dashboard(run, link, &context)
                        .map(Some)
                        .map_err(|message| link_error(run, &c.name, &message)),
                    None if files.contains(&c.name) => {
                        Ok(cell.as_str().filter(|id| is_attachment_id(id)).map(|id| {
                            format!("/api/v1/tenants/{}/attachments/{id}", run.tenant.tenant)
                        }))
                    }
                    None => Ok(None),
                })
                .collect()
        })
        .collect()
}

/// The `attachment` columns of the table the panel reads (tenant.yaml).
pub fn attachment_columns(run: &Run<'_>) -> Vec<String> {
    run.panel
        .config
        .data_source
        .as_ref()
        .and_then(|d| run.tenant.settings.tables.get(&d.table))
        .map(|t| {
            t.attachment_columns()
                .into_iter()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The page `link` opens for one row (`context` holds it as `row`), or why not.
pub fn to_dashboard(run: &Run<'_>, link: &RowLink, context: &Value) -> Result<String, String> {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in range_params(run) {
        query.append_pair(k, &v);
    }
    for (name, template) in &link.vars {
        let value = render_text(template, context).map_err(|(_, message)| message)?;
        query.append_pair(&format!("var-{name}"), &value);
    }
    Ok(format!(
        "/t/{}/d/{}?{}",
        run.tenant.tenant,
        link.dashboard,
        query.finish()
    ))
}

/// The range as the request gave it (relative ranges stay relative); none when it gave none —
/// a resolved default would freeze "now" into the link, and the page it opens would stop
/// showing new rows.
fn range_params(run: &Run<'_>) -> Vec<(&'static str, String)> {
    [("from", &run.request.from), ("to", &run.request.to)]
        .into_iter()
        .filter_map(|(name, value)| value.clone().map(|v| (name, v)))
        .collect()
}

/// A link template that failed on a row (the panel's YAML is at fault).
pub fn link_error(run: &Run<'_>, at: &str, message: &str) -> PanelError {
    PanelError::Shape {
        panel: run.panel.id.clone(),
        message: format!("{at}: link: {message}"),
    }
}
