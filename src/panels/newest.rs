//! Whether a panel can answer from the storage layer's newest row of every series
//! (`last_rows`) instead of scanning its range — a health list or a KPI's newest value, asked
//! for the range that ends now — and the clause that reads those rows.

use super::{Run, sqlgen};
use crate::storage::{ColumnKind, TIME_COLUMN};

/// The table whose newest rows answer `run` as its scan would, when they can: a live range
/// (ending now), the panel's own columns (no `sql:`), its time column `time`, and a `where:`
/// reading tag columns only (a filter on a field could pass over a series' newest row for an
/// older one). After a start the cache first reads the table's files: until it has, `None`,
/// and the reading is set going in the background.
pub fn source<'a>(run: &'a Run<'_>) -> Option<&'a str> {
    if run.range.to_ns < run.now_ns {
        return None;
    }
    any_range_source(run)
}

/// [`source`] for any range: for a caller that needs only the single newest row in range (it
/// checks that row is inside; if the table's newest is past the range's end, it scans).
pub fn any_range_source<'a>(run: &'a Run<'_>) -> Option<&'a str> {
    let config = &run.panel.config;
    if config.sql.is_some() || sqlgen::time_column(config) != TIME_COLUMN {
        return None;
    }
    let table = config.data_source.as_ref()?.table.as_str();
    let handle = run.store.table(table)?;
    if let Some(filter) = config.clauses().and_then(|c| c.where_clause.as_deref()) {
        let schema = run.store.schema_for_write(table);
        let columns = crate::query::parse_where(filter).ok()?;
        if !columns
            .iter()
            .all(|c| schema.kind_of(c) == Some(ColumnKind::Tag))
        {
            return None;
        }
    }
    if !run.store.last_rows_ready(&handle) {
        run.store.warm_last_rows(&handle);
        return None;
    }
    Some(table)
}

/// `FROM last_rows('table') WHERE time >= $from`, and the panel's `where:`. No upper bound: a
/// row dated past the range's end shows, and the caller then asks the scan instead.
pub fn from_where(run: &Run<'_>, table: &str) -> String {
    let mut sql = format!("FROM last_rows('{table}') WHERE {TIME_COLUMN} >= $from");
    let filter = run
        .panel
        .config
        .clauses()
        .and_then(|c| c.where_clause.as_deref());
    if let Some(filter) = filter {
        sql.push_str(&format!(" AND ({filter})"));
    }
    sql
}
