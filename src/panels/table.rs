//! `table`: configured columns with display names and formats, sortable on any configured
//! column, paged, with a text filter. The YAML's `query` (where / order_by / limit) picks the
//! rows; the request's `sort`, `order`, `page`, `page_size` and `filter` act within them.
//!
//! Answer: `{panel, type, title, description, range, columns: [{name, display, format}],
//! rows: [[raw...]], text: [[formatted...]], page, page_size, total_rows, total_pages, sort,
//! order}`. A `sql:` panel's own columns are shown when `data_source.columns` is absent.

use datafusion::common::ScalarValue;
use serde_json::{Value, json};

use super::values::{column_names, json_rows};
use super::{Bucket, PanelError, ParamError, Run, sqlgen};
use crate::config::{ColumnFormat, Columns, SortOrder, TableColumn};
use crate::query::Params;

const DEFAULT_PAGE_SIZE: u32 = 25;

/// The rows a table shows, before paging: its query, the request's filter and sort.
pub(super) struct TablePlan {
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
}

pub(super) async fn plan(run: &Run<'_>) -> Result<TablePlan, PanelError> {
    let config = &run.panel.config;
    let display = &config.display;
    let configured: Vec<TableColumn> =
        match config.data_source.as_ref().and_then(|d| d.columns.as_ref()) {
            Some(Columns::List(list)) => list.clone(),
            _ => vec![],
        };
    let base = match &config.sql {
        Some(sql) => sql.clone(),
        None => {
            let select: Vec<String> = configured.iter().map(|c| sqlgen::ident(&c.name)).collect();
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

pub async fn run(run: &Run<'_>) -> Result<Value, PanelError> {
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
    let total = super::values::floats(&run.rows(&count_sql, &params).await?, "n")
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
            })
            .collect()
    } else {
        configured
    };
    let tz = run.tenant.timezone;
    let text: Vec<Vec<Value>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(&columns)
                .map(|(cell, column)| json!(format_cell(cell, column.format, tz)))
                .collect()
        })
        .collect();
    let mut out = run.header();
    out.insert(
        "columns".into(),
        json!(
            columns
                .iter()
                .map(|c| json!({
                    "name": c.name,
                    "display": c.display.clone().unwrap_or_else(|| c.name.clone()),
                    "format": c.format,
                }))
                .collect::<Vec<_>>()
        ),
    );
    out.insert("rows".into(), json!(rows));
    out.insert("text".into(), json!(text));
    out.insert("page".into(), json!(page));
    out.insert("page_size".into(), json!(page_size));
    out.insert("total_rows".into(), json!(total));
    out.insert(
        "total_pages".into(),
        json!(total.div_ceil(u64::from(page_size))),
    );
    out.insert("sort".into(), json!(sort));
    out.insert("order".into(), json!(order));
    out.insert("sortable".into(), json!(display.sortable.unwrap_or(true)));
    Ok(Value::Object(out))
}

/// A cell as the user reads it, per the column's `format`.
pub fn format_cell(cell: &Value, format: Option<ColumnFormat>, tz: chrono_tz::Tz) -> String {
    let number = cell.as_f64();
    match (format, cell) {
        (_, Value::Null) => String::new(),
        (Some(ColumnFormat::Datetime), Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|_| s.clone()),
        (Some(ColumnFormat::Number), _) if number.is_some() => {
            group_thousands(number.unwrap_or_default())
        }
        (Some(ColumnFormat::Percent), _) if number.is_some() => {
            format!("{:.1}%", number.unwrap_or_default())
        }
        (Some(ColumnFormat::Bytes), _) if number.is_some() => bytes(number.unwrap_or_default()),
        (Some(ColumnFormat::Duration), _) if number.is_some() => {
            seconds(number.unwrap_or_default())
        }
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

fn group_thousands(v: f64) -> String {
    let text = if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    };
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

fn bytes(v: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = v;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Seconds as `1h 2m 3s` (sub-second values as milliseconds).
fn seconds(v: f64) -> String {
    if v.abs() < 1.0 {
        return format!("{:.0}ms", v * 1000.0);
    }
    let total = v.round() as i64;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_cells() {
        let tz = chrono_tz::Europe::Paris;
        assert_eq!(
            format_cell(
                &json!("2024-01-01T00:00:00Z"),
                Some(ColumnFormat::Datetime),
                tz
            ),
            "2024-01-01 01:00:00"
        );
        assert_eq!(
            format_cell(&json!(1234567.5), Some(ColumnFormat::Number), tz),
            "1,234,567.50"
        );
        assert_eq!(
            format_cell(&json!(-1000), Some(ColumnFormat::Number), tz),
            "-1,000"
        );
        assert_eq!(
            format_cell(&json!(12.345), Some(ColumnFormat::Percent), tz),
            "12.3%"
        );
        assert_eq!(
            format_cell(&json!(1536), Some(ColumnFormat::Bytes), tz),
            "1.5 KiB"
        );
        assert_eq!(
            format_cell(&json!(3725), Some(ColumnFormat::Duration), tz),
            "1h 2m 5s"
        );
        assert_eq!(
            format_cell(&json!(0.25), Some(ColumnFormat::Duration), tz),
            "250ms"
        );
        assert_eq!(format_cell(&Value::Null, None, tz), "");
        assert_eq!(format_cell(&json!("ERROR"), None, tz), "ERROR");
    }
}
