//! Row links: a column with `link:` points each cell at another dashboard of the tenant, its
//! variables filled from the row (`{{ row.vm }}`) and the request's time range kept — the way
//! from a fleet table to one entity's page.

use serde_json::{Map, Value, json};

use super::super::{PanelError, Run};
use crate::config::TableColumn;
use crate::render::render_text;

/// For each row, each column's link (or none); empty when no column links.
pub fn of_rows(
    run: &Run<'_>,
    columns: &[TableColumn],
    rows: &[Vec<Value>],
) -> Result<Vec<Vec<Option<String>>>, PanelError> {
    if columns.iter().all(|c| c.link.is_none()) {
        return Ok(vec![]);
    }
    let range = range_params(run);
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
                .map(|c| match &c.link {
                    None => Ok(None),
                    Some(link) => {
                        let mut query = url::form_urlencoded::Serializer::new(String::new());
                        for (k, v) in &range {
                            query.append_pair(k, v);
                        }
                        for (name, template) in &link.vars {
                            let value = render_text(template, &context)
                                .map_err(|(_, message)| template_error(run, c, &message))?;
                            query.append_pair(&format!("var-{name}"), &value);
                        }
                        Ok(Some(format!(
                            "/t/{}/d/{}?{}",
                            run.tenant.tenant,
                            link.dashboard,
                            query.finish()
                        )))
                    }
                })
                .collect()
        })
        .collect()
}

/// The range as the request gave it (relative ranges stay relative), else as resolved.
fn range_params(run: &Run<'_>) -> Vec<(&'static str, String)> {
    let header = run.header();
    let from = run
        .request
        .from
        .clone()
        .unwrap_or_else(|| header.range.from.rfc3339());
    let to = run
        .request
        .to
        .clone()
        .unwrap_or_else(|| header.range.to.rfc3339());
    vec![("from", from), ("to", to)]
}

fn template_error(run: &Run<'_>, column: &TableColumn, message: &str) -> PanelError {
    PanelError::Shape {
        panel: run.panel.id.clone(),
        message: format!("column `{}`: link: {message}", column.name),
    }
}
