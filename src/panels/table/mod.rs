//! `table`: configured columns with display names and formats, sortable on any configured
//! column, paged, with a text filter. The YAML's `query` (where / order_by / limit) picks the
//! rows; the request's `sort`, `order`, `page`, `page_size` and `filter` act within them.
//!
//! Answer: `{panel, type, title, description, range, columns: [{name, display, format}],
//! rows: [[raw...]], text: [[formatted...]], page, page_size, total_rows, total_pages, sort,
//! order, sortable}`. A `sql:` panel's own columns are shown when `data_source.columns` is
//! absent.

mod format;
mod fragment;
mod plan;

pub use format::format_cell;

use async_trait::async_trait;
use datafusion::common::ScalarValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::answer::Header;
use super::kind::{KindSpec, Source};
use super::kinds::{PanelAnswer, PanelKind};
use super::values::{floats, json_rows};
use super::{PanelError, Run};
use crate::config::{ColumnFormat, SortOrder, TableColumn};
use crate::query::Params;
use plan::{TablePlan, plan};

const DEFAULT_PAGE_SIZE: u32 = 25;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableAnswer {
    #[serde(flatten)]
    pub header: Header,
    pub columns: Vec<ColumnHeading>,
    /// The page's cells as stored (numbers, text, booleans, times as RFC 3339, null).
    pub rows: Vec<Vec<Value>>,
    /// The same cells as shown, per the columns' formats.
    pub text: Vec<Vec<String>>,
    pub page: u32,
    pub page_size: u32,
    pub total_rows: u64,
    pub total_pages: u64,
    pub sort: Option<String>,
    pub order: SortOrder,
    pub sortable: bool,
    /// Per row, per column: the page a cell links to (columns with `link:`); empty when none do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Vec<Option<String>>>,
    /// `display.gallery` with an attachment column: drawn as a grid of thumbnails.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gallery: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnHeading {
    pub name: String,
    pub display: String,
    pub format: Option<ColumnFormat>,
    /// An `attachment` column: its cells link to files and show their thumbnails.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attachment: bool,
}

pub struct Table;

static SPEC: KindSpec = KindSpec {
    name: "table",
    default_size: (12, 3),
    source: Source::Columns,
    display_keys: &[
        "sortable",
        "default_sort",
        "default_sort_order",
        "pagination",
        "gallery",
    ],
    ..KindSpec::PLAIN
};

#[async_trait]
impl PanelKind for Table {
    fn spec(&self) -> &'static KindSpec {
        &SPEC
    }

    async fn run(&self, run: &Run<'_>) -> Result<PanelAnswer, PanelError> {
        answer(run).await.map(PanelAnswer::Table)
    }

    /// Every matching row in display order, without paging.
    /// Attachment columns export as their files' URLs.
    async fn export_query(&self, run: &Run<'_>) -> Result<(String, Params), PanelError> {
        let plan = plan(run).await?;
        let files = super::links::attachment_columns(run);
        let sql = plan.export_sql(&files);
        let mut params = plan.params;
        if sql.contains("$attachment_url") {
            let prefix = format!("/api/v1/tenants/{}/attachments/", run.tenant.tenant);
            params.insert("attachment_url".into(), ScalarValue::Utf8(Some(prefix)));
        }
        Ok((sql, params))
    }
}

async fn answer(run: &Run<'_>) -> Result<TableAnswer, PanelError> {
    let display = &run.panel.config.display;
    let request = run.request;
    let page_size = request.page_size(display.pagination.unwrap_or(DEFAULT_PAGE_SIZE))?;
    let page = request.page()?;
    let TablePlan {
        base,
        filter,
        order_sql,
        params,
        names,
        configured,
        sort,
        order,
    } = plan(run).await?;
    let count_sql = format!("SELECT count(*) AS n FROM ({base}) AS base{filter}");
    let total = floats(&run.rows(&count_sql, &params).await?, "n")
        .and_then(|v| v.first().copied().flatten())
        .unwrap_or(0.0) as u64;
    // LIMIT and OFFSET are integers parsed and range-checked above, not request text.
    let offset = u64::from(page - 1) * u64::from(page_size);
    let page_sql = format!(
        "SELECT * FROM ({base}) AS base{filter}{order_sql} LIMIT {page_size} OFFSET {offset}"
    );
    let batches = run.rows(&page_sql, &params).await?;
    let rows = json_rows(&batches);
    let columns: Vec<TableColumn> = if configured.is_empty() {
        names
            .iter()
            .map(|n| TableColumn {
                name: n.clone(),
                display: None,
                format: None,
                link: None,
            })
            .collect()
    } else {
        configured
    };
    let links = super::links::of_rows(run, &columns, &rows)?;
    let files = super::links::attachment_columns(run);
    let tz = run.tenant.timezone;
    let text = rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(&columns)
                .map(|(cell, column)| format_cell(cell, column.format, tz))
                .collect()
        })
        .collect();
    Ok(TableAnswer {
        header: run.header(),
        columns: columns
            .into_iter()
            .map(|c| ColumnHeading {
                display: c.display.unwrap_or_else(|| c.name.clone()),
                attachment: files.contains(&c.name),
                name: c.name,
                format: c.format,
            })
            .collect(),
        rows,
        text,
        page,
        page_size,
        total_rows: total,
        total_pages: total.div_ceil(u64::from(page_size)),
        sort,
        order,
        sortable: display.sortable.unwrap_or(true),
        gallery: display.gallery == Some(true) && !files.is_empty(),
        links,
    })
}

/// The first of the table's rows (its query, range and variables — not the request's filter
/// or page) whose `key` columns read as the given text (`None`: null), as column → value.
/// What an action runs against: a row the panel can show, never the client's copy of it.
pub async fn find_row(
    run: &Run<'_>,
    key: &[(String, Option<String>)],
) -> Result<Option<serde_json::Map<String, Value>>, PanelError> {
    let TablePlan {
        base,
        mut params,
        names,
        ..
    } = plan(run).await?;
    let mut conditions = vec![];
    for (i, (column, value)) in key.iter().enumerate() {
        if !names.contains(column) {
            return Err(run.shape_error(format!("the table has no column `{column}`")));
        }
        let ident = super::sqlgen::ident(column);
        match value {
            Some(text) => {
                let name = format!("row_key_{i}");
                conditions.push(format!("CAST({ident} AS VARCHAR) = ${name}"));
                params.insert(name, ScalarValue::Utf8(Some(text.clone())));
            }
            None => conditions.push(format!("{ident} IS NULL")),
        }
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let batches = run
        .rows(
            &format!("SELECT * FROM ({base}) AS base{filter} LIMIT 1"),
            &params,
        )
        .await?;
    let columns = super::values::column_names(&batches);
    Ok(json_rows(&batches)
        .into_iter()
        .next()
        .map(|row| columns.into_iter().zip(row).collect()))
}
