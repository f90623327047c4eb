//! A panel's `actions:` checked beyond serde: ids, templates that compile under the escaping
//! they render with, an http(s) URL, headers whose `${NAME}`s are names, and row columns the
//! panel shows — a table's actions pick a row by key columns; other panels have no row.

use std::collections::BTreeSet;

use crate::config::{
    Columns, MAX_ACTION_RETRIES, PanelAction, PanelConfig, Report, Step, env_references,
};
use crate::render::{check_action_text, row_fields};

/// Longest time one attempt may be given.
const MAX_TIMEOUT_SECS: u64 = 300;

fn at(i: usize, key: &str) -> Vec<Step> {
    vec![
        Step::from("panel"),
        Step::from("actions"),
        Step::Index(i),
        Step::from(key),
    ]
}

pub fn check_actions(panel: &PanelConfig, r: &mut Report<'_>) {
    let mut ids = BTreeSet::new();
    let is_table = panel.kind.name() == "table";
    let columns: Option<Vec<&str>> =
        match panel.data_source.as_ref().and_then(|d| d.columns.as_ref()) {
            Some(Columns::List(list)) => Some(list.iter().map(|c| c.name.as_str()).collect()),
            _ => None,
        };
    for (i, action) in panel.actions.iter().enumerate() {
        let valid_id = !action.id.is_empty()
            && action.id.len() <= 64
            && action
                .id
                .starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && action
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid_id {
            r.at(
                &at(i, "id"),
                format!(
                    "action id {:?}: lowercase letters, digits, `_` and `-`, at most 64",
                    action.id
                ),
            );
        } else if !ids.insert(action.id.as_str()) {
            r.at(
                &at(i, "id"),
                format!("action `{}` is declared twice", action.id),
            );
        }
        if action.label.trim().is_empty() {
            r.at(&at(i, "label"), "an action needs a `label`");
        }
        check_texts(action, i, r);
        check_headers(action, i, r);
        if action.retries > MAX_ACTION_RETRIES {
            r.at(
                &at(i, "retries"),
                format!("`retries` is at most {MAX_ACTION_RETRIES}"),
            );
        }
        let timeout = action.timeout();
        if timeout.is_zero() || timeout.as_secs() > MAX_TIMEOUT_SECS {
            r.at(
                &at(i, "timeout"),
                format!("`timeout` must be between 1s and {MAX_TIMEOUT_SECS}s"),
            );
        }
        check_row(action, i, is_table, columns.as_deref(), r);
    }
}

fn check_texts(action: &PanelAction, i: usize, r: &mut Report<'_>) {
    for (name, source) in action.templates() {
        let key = name.split('.').next().unwrap_or(name);
        if let Err((line, message)) = check_action_text(name, source) {
            let place = line
                .map(|l| format!(" (template line {l})"))
                .unwrap_or_default();
            r.at(&at(i, key), format!("`{key}`: {message}{place}"));
        }
    }
    let literal = action
        .url
        .split("{{")
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let written = ["https://", "http://", "${"];
    if !written.iter().any(|start| literal.starts_with(start)) {
        r.at(
            &at(i, "url"),
            "`url` must start with http://, https:// or ${NAME} (written out, not from a value)",
        );
    }
    if let Err(message) = env_references(&action.url) {
        r.at(&at(i, "url"), format!("`url`: {message}"));
    }
}

fn check_headers(action: &PanelAction, i: usize, r: &mut Report<'_>) {
    for (name, value) in &action.headers {
        if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            r.at(&at(i, "headers"), format!("{name:?} is not a header name"));
        }
        if let Err(message) = env_references(value) {
            r.at(&at(i, "headers"), format!("header `{name}`: {message}"));
        }
    }
}

/// A table's action picks its row by key columns the table shows; elsewhere there is no row.
/// Each `row.<column>` is reported at the template that reads it.
fn check_row(
    action: &PanelAction,
    i: usize,
    is_table: bool,
    columns: Option<&[&str]>,
    r: &mut Report<'_>,
) {
    if !is_table && action.key.is_some() {
        r.at(&at(i, "key"), "`key` applies to a table's actions only");
    }
    if is_table && action.key.as_ref().is_some_and(Vec::is_empty) {
        r.at(&at(i, "key"), "`key` names at least one column");
    }
    if let Some(columns) = columns.filter(|_| is_table) {
        for name in action.key.iter().flatten() {
            if !columns.contains(&name.as_str()) {
                r.at(
                    &at(i, "key"),
                    format!("key column `{name}` is not one of the table's columns"),
                );
            }
        }
    }
    for (name, source) in action.templates() {
        let key = name.split('.').next().unwrap_or(name);
        for field in row_fields(source) {
            if !is_table {
                r.at(
                    &at(i, key),
                    format!("`{key}`: `row.{field}`: only a table's actions have a row (this one runs per panel)"),
                );
            } else if let Some(columns) = columns.filter(|c| !c.contains(&field.as_str())) {
                r.at(
                    &at(i, key),
                    format!(
                        "`{key}`: `row.{field}` is not one of the table's columns ({})",
                        columns.join(", ")
                    ),
                );
            }
        }
    }
}
