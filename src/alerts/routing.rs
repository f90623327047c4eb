//! Which alerts go where and together: routes pick channels by severity and labels (the first
//! match wins unless `continue`), and alerts of one evaluation that share a route, a kind of
//! change and the route's `group_by` values become one [`Group`] — one message.

use std::collections::BTreeMap;

use super::state::{Change, Labels, labels_key};
use crate::config::RouteConfig;

/// One alert on its way out.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub rule: String,
    pub severity: String,
    /// The series' labels plus the rule's, `alertname` and `severity`.
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub message: String,
    pub change: Change,
    pub starts_at: i64,
    pub ends_at: Option<i64>,
    pub value: Option<f64>,
    /// The panel the rule watches, for links back (Alertmanager's `generatorURL`).
    pub panel: Option<String>,
    /// How often a firing alert is sent again (the routes' `repeat_interval`): receivers that
    /// expire alerts (Alertmanager) keep it firing that long and more.
    pub repeat_ms: i64,
    /// An event rule's notice: the event's picture and where it is shown.
    pub event: Option<EventNotice>,
}

/// What an event rule's notice carries besides its text.
#[derive(Debug, Clone)]
pub struct EventNotice {
    /// The event's picture (an attachment id of the tenant), when it has one.
    pub attachment: Option<String>,
    /// Its thumbnail (JPEG), for channels that show it inline.
    pub thumbnail: Option<bytes::Bytes>,
    /// Where the event is shown: a path of this server.
    pub link: String,
}

fn route_takes(route: &RouteConfig, a: &Outgoing) -> bool {
    (route.severity.is_empty() || route.severity.iter().any(|s| s.as_str() == a.severity))
        && route
            .matchers
            .iter()
            .all(|(k, v)| a.labels.get(k) == Some(v))
}

/// The alerts of one message: same route, same kind of change, same `group_by` values.
#[derive(Debug, Clone)]
pub struct Group {
    pub route: usize,
    pub status: &'static str,
    pub group_labels: Labels,
    pub alerts: Vec<Outgoing>,
}

/// Splits a cycle's alerts into messages per route.
pub fn group(routes: &[RouteConfig], alerts: Vec<Outgoing>) -> Vec<Group> {
    let mut groups: BTreeMap<(usize, &'static str, String), Group> = BTreeMap::new();
    for a in alerts {
        let status = if a.change == Change::Resolved {
            "resolved"
        } else {
            "firing"
        };
        for (i, route) in routes.iter().enumerate() {
            if !route_takes(route, &a) {
                continue;
            }
            let group_labels: Labels = route
                .group_by
                .iter()
                .filter_map(|k| a.labels.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            let key = (i, status, labels_key(&group_labels));
            groups
                .entry(key)
                .or_insert_with(|| Group {
                    route: i,
                    status,
                    group_labels,
                    alerts: vec![],
                })
                .alerts
                .push(a.clone());
            if !route.r#continue {
                break;
            }
        }
    }
    groups.into_values().collect()
}

pub fn common_labels(alerts: &[Outgoing]) -> Labels {
    let mut common = alerts.first().map(|a| a.labels.clone()).unwrap_or_default();
    common.retain(|k, v| alerts.iter().all(|a| a.labels.get(k) == Some(v)));
    common
}

/// The group as text, one line per alert: `[FIRING] rule (severity): message`.
pub fn text_lines(g: &Group) -> String {
    g.alerts
        .iter()
        .map(|a| {
            format!(
                "[{}] {} ({}): {}",
                g.status.to_uppercase(),
                a.rule,
                a.severity,
                a.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::channels::{alertmanager_body, slack_body};
    use crate::config::Severity;

    fn alert(rule: &str, host: &str, sev: &str, change: Change) -> Outgoing {
        let labels: Labels = [("alertname", rule), ("host", host), ("severity", sev)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Outgoing {
            rule: rule.into(),
            severity: sev.into(),
            labels,
            annotations: BTreeMap::new(),
            message: format!("{rule} on {host}"),
            change,
            starts_at: 0,
            ends_at: None,
            value: Some(1.0),
            panel: None,
            repeat_ms: 3_600_000,
            event: None,
        }
    }

    fn route(severity: Vec<Severity>, group_by: &[&str], cont: bool) -> RouteConfig {
        RouteConfig {
            channels: vec!["c".into()],
            severity,
            matchers: BTreeMap::new(),
            group_by: group_by.iter().map(|s| s.to_string()).collect(),
            repeat_interval: None,
            r#continue: cont,
        }
    }

    #[test]
    fn routes_by_severity_and_groups_by_labels() {
        let routes = vec![
            route(vec![Severity::Critical], &["alertname"], false),
            route(vec![], &[], false),
        ];
        let alerts = vec![
            alert("cpu", "a", "critical", Change::Firing),
            alert("cpu", "b", "critical", Change::Firing),
            alert("disk", "a", "low", Change::Firing),
            alert("cpu", "c", "critical", Change::Resolved),
        ];
        let groups = group(&routes, alerts);
        let summary: Vec<(usize, &str, usize)> = groups
            .iter()
            .map(|g| (g.route, g.status, g.alerts.len()))
            .collect();
        assert_eq!(
            summary,
            vec![(0, "firing", 2), (0, "resolved", 1), (1, "firing", 1)]
        );
        let body = alertmanager_body("ops", &groups[0]);
        assert_eq!(body["status"], "firing");
        assert_eq!(body["groupLabels"]["alertname"], "cpu");
        assert_eq!(body["commonLabels"]["severity"], "critical");
        assert!(body["commonLabels"].get("host").is_none());
        assert_eq!(body["alerts"][1]["annotations"]["message"], "cpu on b");
        assert_eq!(
            slack_body(&groups[1])["text"],
            "[RESOLVED] cpu (critical): cpu on c"
        );
    }

    #[test]
    fn continue_lets_later_routes_take_the_alert() {
        let routes = vec![route(vec![], &[], true), route(vec![], &[], false)];
        assert_eq!(
            group(&routes, vec![alert("x", "a", "low", Change::Firing)]).len(),
            2
        );
        let routes = vec![route(vec![], &[], false), route(vec![], &[], false)];
        assert_eq!(
            group(&routes, vec![alert("x", "a", "low", Change::Firing)]).len(),
            1
        );
    }
}
