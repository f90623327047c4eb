//! Getting alerts to people: routes pick channels by severity and labels, alerts of one
//! evaluation that share a route and the route's `group_by` labels go out as one message, and
//! each delivery is retried with backoff and written to the tenant's delivery log.
//!
//! Webhooks speak Alertmanager's JSON (`format: alertmanager`, what most receivers take) or
//! Slack's (`format: slack`); email goes over SMTP; `in_app` lands in the notifications list.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::state::{Change, Labels};
use super::store::{AlertStore, Delivery, Notification};
use crate::config::{ChannelConfig, ChannelType, RouteConfig, TenantAlerts, WebhookFormat};

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
}

#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub smtp: String,
    pub from: String,
    pub attempts: u32,
    pub backoff: Duration,
}

#[derive(Clone)]
pub struct Notifier {
    store: AlertStore,
    http: reqwest::Client,
    settings: NotifySettings,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn route_takes(route: &RouteConfig, a: &Outgoing) -> bool {
    (route.severity.is_empty() || route.severity.iter().any(|s| s.as_str() == a.severity))
        && route
            .matchers
            .iter()
            .all(|(k, v)| a.labels.get(k) == Some(v))
}

/// The alerts of one message: same route, same kind of change, same `group_by` values.
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
            let key = (i, status, super::state::labels_key(&group_labels));
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

fn common_labels(alerts: &[Outgoing]) -> Labels {
    let mut common = alerts.first().map(|a| a.labels.clone()).unwrap_or_default();
    common.retain(|k, v| alerts.iter().all(|a| a.labels.get(k) == Some(v)));
    common
}

/// Alertmanager's webhook body (version 4).
pub fn alertmanager_body(channel: &str, g: &Group) -> Value {
    let alerts: Vec<Value> = g
        .alerts
        .iter()
        .map(|a| {
            let mut annotations = a.annotations.clone();
            annotations.insert("message".into(), a.message.clone());
            json!({
                "status": if a.change == Change::Resolved { "resolved" } else { "firing" },
                "labels": a.labels,
                "annotations": annotations,
                "startsAt": rfc3339(a.starts_at),
                "endsAt": a.ends_at.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
                "fingerprint": format!("{:016x}", crc32fast::hash(super::state::labels_key(&a.labels).as_bytes())),
                "value": a.value,
            })
        })
        .collect();
    json!({
        "version": "4",
        "status": g.status,
        "receiver": channel,
        "groupLabels": g.group_labels,
        "commonLabels": common_labels(&g.alerts),
        "commonAnnotations": {},
        "groupKey": format!("{channel}:{}", super::state::labels_key(&g.group_labels)),
        "alerts": alerts,
    })
}

fn text_lines(g: &Group) -> String {
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

pub fn slack_body(g: &Group) -> Value {
    json!({ "text": text_lines(g) })
}

impl Notifier {
    pub fn new(store: AlertStore, settings: NotifySettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            store,
            http,
            settings,
        }
    }

    /// Sends one cycle's alerts; each delivery runs in its own task (retries must not hold up
    /// the next evaluation).
    pub async fn dispatch(
        &self,
        tenant: &str,
        config: &TenantAlerts,
        alerts: Vec<Outgoing>,
        now: i64,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![];
        for g in group(&config.routes, alerts) {
            for name in &config.routes[g.route].channels {
                let Some(channel) = config.channels.get(name) else {
                    continue;
                };
                if channel.kind == ChannelType::InApp {
                    for a in &g.alerts {
                        let n = Notification {
                            id: 0,
                            at: now,
                            rule: a.rule.clone(),
                            labels: a.labels.clone(),
                            severity: a.severity.clone(),
                            state: g.status.to_string(),
                            message: a.message.clone(),
                        };
                        if let Err(e) = self.store.notify_in_app(tenant, &n).await {
                            tracing::error!(%tenant, error = %e, "cannot store an in-app notification");
                        }
                    }
                    continue;
                }
                let this = self.clone();
                let (tenant, channel) = (tenant.to_string(), channel.clone());
                let (status, count) = (g.status, g.alerts.len() as i64);
                let body = match channel.kind {
                    ChannelType::Webhook if channel.format == WebhookFormat::Slack => {
                        slack_body(&g)
                    }
                    _ => alertmanager_body(&channel.name, &g),
                };
                let text = text_lines(&g);
                tasks.push(tokio::spawn(async move {
                    let (attempts, result) = this.deliver_with_retries(&channel, &body, &text, status).await;
                    let delivery = Delivery {
                        at: now,
                        channel: channel.name.clone(),
                        kind: status.to_string(),
                        alerts: count,
                        attempts: attempts as i64,
                        outcome: if result.is_ok() { "sent".into() } else { "failed".into() },
                        error: result.err().unwrap_or_default(),
                    };
                    if delivery.outcome == "failed" {
                        tracing::warn!(%tenant, channel = %channel.name, error = %delivery.error, "alert delivery failed");
                    }
                    if let Err(e) = this.store.log_delivery(&tenant, &delivery).await {
                        tracing::error!(%tenant, error = %e, "cannot write the delivery log");
                    }
                }));
            }
        }
        tasks
    }

    async fn deliver_with_retries(
        &self,
        channel: &ChannelConfig,
        body: &Value,
        text: &str,
        status: &str,
    ) -> (u32, Result<(), String>) {
        let mut delay = self.settings.backoff;
        let mut last = Err(String::new());
        for attempt in 1..=self.settings.attempts.max(1) {
            last = match channel.kind {
                ChannelType::Webhook => self.post(channel, body).await,
                ChannelType::Email => self.email(channel, text, status).await,
                ChannelType::InApp => Ok(()),
            };
            if last.is_ok() || attempt == self.settings.attempts {
                return (attempt, last);
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        (self.settings.attempts, last)
    }

    async fn post(&self, channel: &ChannelConfig, body: &Value) -> Result<(), String> {
        let url = channel.url.as_deref().ok_or("webhook without url")?;
        let response = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("{url} answered {}", response.status()))
        }
    }

    async fn email(&self, channel: &ChannelConfig, text: &str, status: &str) -> Result<(), String> {
        use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
        let server = channel.smtp.as_deref().unwrap_or(&self.settings.smtp);
        let (host, port) = server
            .rsplit_once(':')
            .ok_or_else(|| format!("smtp `{server}` is not host:port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("smtp `{server}`: bad port"))?;
        let from = channel.from.as_deref().unwrap_or(&self.settings.from);
        let first = text.lines().next().unwrap_or("alert");
        let mut message = Message::builder()
            .from(from.parse().map_err(|e| format!("from `{from}`: {e}"))?)
            .subject(format!("[opsboard] {first}"));
        for to in &channel.to {
            message = message.to(to.parse().map_err(|e| format!("to `{to}`: {e}"))?);
        }
        let message = message
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(format!("{text}\n\n({status}, sent by opsboard)\n"))
            .map_err(|e| e.to_string())?;
        // Plain SMTP to the configured relay (a local MTA or a sink); no credentials.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .build();
        transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
