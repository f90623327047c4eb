//! Which rows a table shows, before paging: its query (YAML clauses or `sql:`), the request's
//! text filter (bound, over every column) and sort (a configured column only).

use datafusion::common::ScalarValue;

use super::super::values::column_names;
use super::super::{Bucket, PanelError, ParamError, Run, sqlgen};
use crate::config::{Columns, SortOrder, TableColumn};
use crate::query::Params;

/// The rows a table shows, before paging: its query, the request's filter and sort.
pub struct TablePlan {
    pub base: String,
    /// ` WHERE …` over `base`, or empty.
    pub filter: String,
    /// ` ORDER BY …`, or empty.
    pub order_sql: String,
    pub params: Params,
    pub names: Vec<String>,
    pub configured: Vec<TableColumn>,
    pub sort: Option<String>,
    pub order: SortOrder,
}

impl TablePlan {
    /// Every matching row in display order (what an export streams).
    pub fn all_rows_sql(&self) -> String {
        format!(
            "SELECT * FROM ({}) AS base{}{}",
            self.base, self.filter, self.order_sql
        )
    }

    /// [`Self::all_rows_sql`] with each of `files` (attachment columns) as its file's URL:
    /// `$attachment_url` (bound by the caller) followed by the id.
    pub fn export_sql(&self, files: &[String]) -> String {
        if !self.names.iter().any(|n| files.contains(n)) {
            return self.all_rows_sql();
        }
        let projection: Vec<String> = self
            .names
            .iter()
            .map(|n| {
                let column = sqlgen::ident(n);
                if files.contains(n) {
                    format!("$attachment_url || {column} AS {column}")
                } else {
                    column
                }
            })
            .collect();
        format!(
            "SELECT {} FROM ({}) AS base{}{}",
            projection.join(", "),
            self.base,
            self.filter,
            self.order_sql
        )
    }
}

pub async fn plan(run: &Run<'_>) -> Result<TablePlan, PanelError> {
    let config = &run.panel.config;
    let display = &config.display;
    let configured: Vec<TableColumn> =
        match config.data_source.as_ref().and_then(|d| d.columns.as_ref()) {
            Some(Columns::List(list)) => list.clone(),
            _ => vec![],
        };
    let select: Vec<String> = configured.iter().map(|c| sqlgen::ident(&c.name)).collect();
    let base = match &config.sql {
        // Listed columns show a `sql:` table's answer in their order (and only them).
        Some(sql) if !configured.is_empty() => {
            format!("SELECT {} FROM ({sql}) AS shown", select.join(", "))
        }
        Some(sql) => sql.clone(),
        None => {
            let clauses = config.clauses();
            let mut sql = format!(
                "SELECT {} {}",
                select.join(", "),
                sqlgen::from_where(config, &[])
            );
            if let Some(order_by) = clauses.and_then(|c| c.order_by.as_deref()) {
                sql.push_str(&format!(" ORDER BY {order_by}"));
            }
            if let Some(limit) = clauses.and_then(|c| c.limit) {
                sql.push_str(&format!(" LIMIT {limit}"));
            }
            sql
        }
    };
    let request = run.request;
    let sort = match request.sort.as_deref() {
        Some(sort) => {
            if display.sortable == Some(false) {
                return Err(ParamError {
                    param: "sort",
                    message: "this table is not sortable".into(),
                }
                .into());
            }
            if !configured.is_empty() && !configured.iter().any(|c| c.name == sort) {
                return Err(ParamError {
                    param: "sort",
                    message: format!(
                        "not one of the table's columns ({})",
                        configured
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
                .into());
            }
            Some(sort.to_string())
        }
        None => display.default_sort.clone(),
    };
    let order = request
        .order()?
        .or(display.default_sort_order)
        .unwrap_or(SortOrder::Asc);

    let mut params = sqlgen::base_params(run, run.range.from_ns, run.range.to_ns, Bucket::Raw);
    // The filter needs the column list; a `sql:` table without configured columns learns it
    // from a zero-row probe of its own query.
    let names: Vec<String> = if configured.is_empty() {
        let probe = run
            .rows(&format!("SELECT * FROM ({base}) AS base LIMIT 0"), &params)
            .await?;
        column_names(&probe)
    } else {
        configured.iter().map(|c| c.name.clone()).collect()
    };
    if let Some(sort) = &sort
        && !names.contains(sort)
    {
        return Err(ParamError {
            param: "sort",
            message: format!("no column `{sort}`"),
        }
        .into());
    }
    let filter = match request.filter() {
        Some(text) => {
            params.insert(
                "filter".into(),
                ScalarValue::Utf8(Some(text.to_lowercase())),
            );
            let any: Vec<String> = names
                .iter()
                .map(|n| {
                    format!(
                        "strpos(lower(CAST({} AS VARCHAR)), $filter) > 0",
                        sqlgen::ident(n)
                    )
                })
                .collect();
            format!(" WHERE {}", any.join(" OR "))
        }
        None => String::new(),
    };
    let order_sql = match &sort {
        Some(column) => format!(
            " ORDER BY {} {} NULLS LAST",
            sqlgen::ident(column),
            if order == SortOrder::Desc {
                "DESC"
            } else {
                "ASC"
            }
        ),
        None => String::new(),
    };
    Ok(TablePlan {
        base,
        filter,
        order_sql,
        params,
        names,
        configured,
        sort,
        order,
    })
}
