//! Checks an event rule (`event:` in `alerts/*.yaml`): the table and its `where` plan against
//! the tenant's tables, label and attachment columns exist (the attachment one declared
//! `attachment` in tenant.yaml), the linked panel exists, and the threshold-only keys are not
//! used. A good rule comes back as the [`EventWatch`] the evaluator runs.

use std::collections::BTreeMap;
use std::time::Duration;

use super::sql::plan_against;
use crate::config::{DeclaredType, EventWatch, KnownTables, Report, RuleConfig, TableConfig};
use crate::yaml_path;

/// Most rows one evaluation of an event rule reads (the newest ones).
pub const EVENT_ROWS: usize = 1_000;
const DEFAULT_LOOKBACK: Duration = Duration::from_secs(15 * 60);
const LONGEST: Duration = Duration::from_secs(24 * 3600);

/// The query an event rule runs: the newest matching rows since `$from`.
fn event_sql(table: &str, filter: Option<&str>) -> String {
    let table = format!("\"{}\"", table.replace('"', "\"\""));
    let filter = filter.map_or(String::new(), |f| format!(" AND ({f})"));
    format!(
        "SELECT * FROM {table} WHERE time > $from{filter} ORDER BY time DESC LIMIT {EVENT_ROWS}"
    )
}

/// Checks rule `i`; problems go to `r`, and the watch comes back when there were none.
pub fn check_event_rule(
    rule: &RuleConfig,
    i: usize,
    tables: &KnownTables,
    declared: &BTreeMap<String, TableConfig>,
    panel_ids: &[&str],
    r: &mut Report<'_>,
) -> Option<EventWatch> {
    let event = rule.event.as_ref()?;
    let before = r.problems.len();
    let at = |key: &str| yaml_path!["rules", i, "event", key];
    let threshold_keys = [
        ("sql", rule.sql.is_some()),
        ("panel", rule.panel.is_some()),
        ("condition", rule.condition.is_some()),
        ("absent_for", rule.absent_for.is_some()),
        ("for", rule.for_.is_some()),
        ("range", rule.range.is_some()),
    ];
    for (key, used) in threshold_keys {
        if used {
            r.at(
                &yaml_path!["rules", i, key],
                format!("an event rule has no `{key}`: every new row of `event.table` that matches `event.where` is an event"),
            );
        }
    }
    let Some(columns) = tables.get(&event.table) else {
        r.at(
            &at("table"),
            format!("no table `{}` in this tenant", event.table),
        );
        return None;
    };
    let sql = event_sql(&event.table, event.filter.as_deref());
    if let Err(e) = plan_against(&sql, tables, &[]) {
        let key = if event.filter.is_some() {
            "where"
        } else {
            "table"
        };
        r.at(&at(key), format!("`event.where`: {e}"));
    }
    let table = declared.get(&event.table);
    let labels = match &event.labels {
        Some(labels) => labels.clone(),
        None => table.map(|t| t.tags.clone()).unwrap_or_default(),
    };
    for label in &labels {
        if !columns.contains_key(label) {
            r.at(
                &at("labels"),
                format!("`{}` has no column `{label}`", event.table),
            );
        }
    }
    let attachments: Vec<&str> = table.map(|t| t.attachment_columns()).unwrap_or_default();
    let attachment = match &event.attachment {
        Some(column) => {
            let declared = table.and_then(|t| t.fields.get(column));
            if declared != Some(&DeclaredType::Attachment) {
                r.at(
                    &at("attachment"),
                    format!(
                        "`{column}` is not declared `attachment` in tenant.yaml's `{}` fields",
                        event.table
                    ),
                );
            }
            Some(column.clone())
        }
        None => attachments.first().map(|c| c.to_string()),
    };
    if let Some(panel) = &event.panel
        && !panel_ids.contains(&panel.as_str())
    {
        r.at(&at("panel"), format!("no panel `{panel}` in this tenant"));
    }
    let lookback = event.lookback.map_or(DEFAULT_LOOKBACK, |d| d.0);
    if lookback.is_zero() || lookback > LONGEST {
        r.at(
            &at("lookback"),
            "`lookback` must be more than 0 and at most 24h",
        );
    }
    let throttle = rule.throttle.map_or(Duration::ZERO, |d| d.0);
    if throttle > LONGEST {
        r.at(
            &yaml_path!["rules", i, "throttle"],
            "`throttle` must be at most 24h",
        );
    }
    if rule.daily_cap == Some(0) {
        r.at(
            &yaml_path!["rules", i, "daily_cap"],
            "`daily_cap` must be at least 1 (remove the rule to send nothing)",
        );
    }
    (r.problems.len() == before).then(|| EventWatch {
        table: event.table.clone(),
        sql,
        labels,
        attachment,
        panel: event.panel.clone(),
        lookback,
        throttle,
        daily_cap: rule.daily_cap,
    })
}

/// Keys only event rules take, used on a threshold rule.
pub fn check_threshold_rule(rule: &RuleConfig, i: usize, r: &mut Report<'_>) {
    for (key, used) in [
        ("throttle", rule.throttle.is_some()),
        ("daily_cap", rule.daily_cap.is_some()),
    ] {
        if used {
            r.at(
                &yaml_path!["rules", i, key],
                format!("`{key}` is for event rules (`event:`); a threshold rule repeats by its routes' `repeat_interval`"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_quotes_the_table_and_brackets_the_condition() {
        assert_eq!(
            event_sql("events", Some("kind = 'person' OR zone = 'back'")),
            "SELECT * FROM \"events\" WHERE time > $from AND (kind = 'person' OR zone = 'back') \
             ORDER BY time DESC LIMIT 1000"
        );
        assert!(event_sql("a\"b", None).contains("FROM \"a\"\"b\" WHERE"));
    }
}
