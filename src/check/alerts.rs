//! Loads and checks a tenant's `alerts/*.yaml`: rule SQL planned against the tenant's tables
//! and required to return `value`, exactly one source and one condition per rule, templates
//! that compile, webhook URLs, email recipients, and routes that name defined channels.

use std::path::Path;

use std::collections::BTreeMap;

use super::event_rule::{check_event_rule, check_threshold_rule};
use super::sql::{check_sql, plan_against};
use super::template::check_template;
use crate::config::{
    AlertFile, AlertRule, ChannelType, Condition, KnownTables, Locator, Problem, Report,
    RuleConfig, SUBSCRIBERS, TableConfig, TenantAlerts, Watch, block_first_line, parse_yaml_all,
    read_file, yaml_files,
};

/// What a tenant's alert rules are checked against.
pub struct AlertContext<'a> {
    pub tables: &'a KnownTables,
    /// tenant.yaml's table declarations (tags, attachment columns).
    pub declared: &'a BTreeMap<String, TableConfig>,
    pub panel_ids: &'a [&'a str],
}

/// Reads and checks `dir` (a tenant's `alerts/`); problems are appended, good rules returned.
pub fn load_alerts(dir: &Path, cx: &AlertContext<'_>, problems: &mut Vec<Problem>) -> TenantAlerts {
    let mut out = TenantAlerts::default();
    let mut pending_routes = vec![];
    for (stem, file) in yaml_files(dir) {
        let text = match read_file(&file) {
            Ok(t) => t,
            Err(e) => {
                problems.push(e.into());
                continue;
            }
        };
        let parsed: AlertFile = match parse_yaml_all(&file, &text) {
            Ok(f) => f,
            Err(errors) => {
                problems.extend(errors.into_iter().map(Problem::from));
                continue;
            }
        };
        let locator = Locator::new(&text);
        let mut r = Report {
            file: &file,
            locator: &locator,
            problems: vec![],
        };
        for (i, rule) in parsed.rules.into_iter().enumerate() {
            let at = |key: &str| crate::yaml_path!["rules", i, key];
            if out.rules.iter().any(|r| r.config.name == rule.name) {
                r.at(
                    &at("name"),
                    format!("a rule named `{}` already exists", rule.name),
                );
            }
            let watch = if rule.event.is_some() {
                check_event_rule(&rule, i, cx.tables, cx.declared, cx.panel_ids, &mut r)
                    .map(Watch::Event)
            } else {
                check_threshold_rule(&rule, i, &mut r);
                check_threshold(&rule, i, cx, &mut r).map(Watch::Threshold)
            };
            if rule.every.is_some_and(|d| d.0.is_zero()) {
                r.at(&at("every"), "`every` must be more than 0");
            }
            let message_line = block_first_line(&text, &locator, &at("message"));
            if let Some(m) = &rule.message {
                check_template(m, message_line, &at("message"), &mut r);
            }
            for (k, v) in &rule.annotations {
                let key = crate::yaml_path!["rules", i, "annotations", k.as_str()];
                check_template(v, block_first_line(&text, &locator, &key), &key, &mut r);
            }
            let (line, _) = locator.locate(&at("name"));
            if let Some(watch) = watch {
                out.rules.push(AlertRule {
                    config: rule,
                    watch,
                    origin: format!("alerts/{stem}.yaml:{line}"),
                    message_line,
                });
            }
        }
        for (i, channel) in parsed.channels.into_iter().enumerate() {
            let at = |key: &str| crate::yaml_path!["channels", i, key];
            if channel.name == SUBSCRIBERS {
                r.at(
                    &at("name"),
                    "`subscribers` is the built-in channel of the users who subscribed on /account; name this one otherwise",
                );
            }
            if out.channels.contains_key(&channel.name) {
                r.at(
                    &at("name"),
                    format!("a channel named `{}` already exists", channel.name),
                );
            }
            match channel.kind {
                ChannelType::Webhook | ChannelType::Alertmanager => {
                    match channel.url.as_deref().map(url::Url::parse) {
                        Some(Ok(u)) if matches!(u.scheme(), "http" | "https") => {}
                        Some(_) => r.at(&at("url"), "`url` must be an http:// or https:// URL"),
                        None => r.at(&at("name"), "a webhook or alertmanager channel needs `url`"),
                    }
                }
                ChannelType::Email if channel.to.is_empty() => {
                    r.at(&at("name"), "an email channel needs `to: [address, ...]`")
                }
                _ => {}
            }
            out.channels.insert(channel.name.clone(), channel);
        }
        for (i, route) in parsed.routes.into_iter().enumerate() {
            let (line, column) = locator.locate(&crate::yaml_path!["routes", i, "channels"]);
            pending_routes.push((file.clone(), line, column, route));
        }
        problems.extend(r.problems);
    }
    // Routes may name channels of any file, so they are checked once all are read.
    for (file, line, column, route) in pending_routes {
        for name in &route.channels {
            if !out.channels.contains_key(name) && name != SUBSCRIBERS {
                problems.push(Problem {
                    file: file.clone(),
                    line,
                    column,
                    message: format!("route names channel `{name}`, which no alerts file defines"),
                });
            }
        }
        out.routes.push(route);
    }
    out
}

/// A threshold rule's source and condition.
fn check_threshold(
    rule: &RuleConfig,
    i: usize,
    cx: &AlertContext<'_>,
    r: &mut Report<'_>,
) -> Option<Condition> {
    let at = |key: &str| crate::yaml_path!["rules", i, key];
    if let Some(sql) = &rule.sql {
        check_sql(sql, &[], &at("sql"), r);
        match plan_against(sql, cx.tables, &[]) {
            Ok(columns) if !columns.iter().any(|c| c == "value") => r.at(
                &at("sql"),
                format!(
                    "`sql` must return a `value` column (it returns {})",
                    columns.join(", ")
                ),
            ),
            Ok(_) => {}
            Err(e) => r.at(&at("sql"), format!("`sql`: {e}")),
        }
    }
    match (&rule.sql, &rule.panel) {
        (Some(_), Some(_)) | (None, None) => r.at(
            &at("name"),
            "a rule needs exactly one of `sql`, `panel` or `event`",
        ),
        (None, Some(p)) if !cx.panel_ids.contains(&p.as_str()) => {
            r.at(&at("panel"), format!("no panel `{p}` in this tenant"))
        }
        _ => {}
    }
    match (&rule.condition, rule.absent_for) {
        (Some(text), None) => Condition::parse(text)
            .map_err(|e| r.at(&at("condition"), e))
            .ok(),
        (None, Some(d)) => Some(Condition::AbsentFor(d.0)),
        _ => {
            r.at(
                &at("name"),
                "a rule needs exactly one of `condition` or `absent_for`",
            );
            None
        }
    }
}
