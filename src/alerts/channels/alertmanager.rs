//! `type: alertmanager`: alerts posted to an Alertmanager's own API (`POST /api/v2/alerts`), the
//! way Prometheus sends them, so teams that route, group, inhibit and silence in Alertmanager
//! keep doing so. `url` is the Alertmanager's address (`http://alertmanager:9093`).
//!
//! Alertmanager forgets an alert once its `endsAt` passes. A resolved alert is sent with the
//! time it cleared; a firing one with `endsAt` two `repeat_interval`s ahead — opsboard sends it
//! again every interval while it fires, and if opsboard goes away the alert expires instead of
//! firing forever.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::super::routing::Group;
use super::super::state::Change;
use super::webhook::rfc3339;
use super::{Channel, ChannelError, Message, Webhook};
use crate::config::{ChannelConfig, IpNetwork};

pub struct Alertmanager {
    target: Webhook,
    external_url: String,
}

impl Alertmanager {
    pub fn new(
        config: &ChannelConfig,
        http: reqwest::Client,
        allowed_targets: Arc<Vec<IpNetwork>>,
        external_url: &str,
    ) -> Result<Self, ChannelError> {
        let mut target = Webhook::new(config, http, allowed_targets)?;
        let base = target.url.trim_end_matches('/');
        if !base.ends_with("/api/v2/alerts") {
            target.url = format!("{base}/api/v2/alerts");
        }
        Ok(Self {
            target,
            external_url: external_url.to_string(),
        })
    }
}

#[async_trait]
impl Channel for Alertmanager {
    async fn send(&self, message: &Message<'_>) -> Result<(), ChannelError> {
        let body = postable_alerts(
            message.tenant,
            message.group,
            message.at,
            &self.external_url,
        );
        self.target.post_json(&body).await
    }
}

/// The `postableAlerts` body: one entry per alert, with the tenant as a label (Alertmanager
/// serves every tenant) and a link back to the panel the rule watches, else the alerts page.
pub fn postable_alerts(tenant: &str, group: &Group, at: i64, external_url: &str) -> Value {
    let alerts: Vec<Value> = group
        .alerts
        .iter()
        .map(|a| {
            let mut labels = a.labels.clone();
            labels
                .entry("tenant".into())
                .or_insert_with(|| tenant.to_string());
            let mut annotations = a.annotations.clone();
            annotations.insert("message".into(), a.message.clone());
            let ends_at = match (a.change, a.ends_at) {
                (Change::Resolved, Some(ended)) => ended,
                (Change::Resolved, None) => at,
                _ => at.saturating_add(a.repeat_ms.saturating_mul(2)),
            };
            let link = match &a.panel {
                Some(panel) => format!("{external_url}/t/{tenant}/p/{panel}"),
                None => format!("{external_url}/t/{tenant}/alerts"),
            };
            json!({
                "labels": labels,
                "annotations": annotations,
                "startsAt": rfc3339(a.starts_at),
                "endsAt": rfc3339(ends_at),
                "generatorURL": link,
            })
        })
        .collect();
    Value::Array(alerts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::routing::Outgoing;

    fn outgoing(change: Change, panel: Option<&str>) -> Outgoing {
        Outgoing {
            rule: "cpu".into(),
            severity: "high".into(),
            labels: [("alertname".to_string(), "cpu".to_string())].into(),
            annotations: Default::default(),
            message: "cpu high".into(),
            change,
            starts_at: 1_000,
            ends_at: (change == Change::Resolved).then_some(5_000),
            value: Some(1.0),
            panel: panel.map(str::to_string),
            repeat_ms: 60_000,
            event: None,
        }
    }

    #[test]
    fn firing_alerts_hold_two_intervals_and_resolved_ones_end_when_they_cleared() {
        let group = Group {
            route: 0,
            status: "firing",
            group_labels: Default::default(),
            alerts: vec![
                outgoing(Change::Firing, Some("cpu-load")),
                outgoing(Change::Resolved, None),
            ],
        };
        let body = postable_alerts("acme", &group, 2_000, "https://ops.example");
        assert_eq!(
            body[0]["labels"],
            json!({"alertname": "cpu", "tenant": "acme"})
        );
        assert_eq!(body[0]["annotations"]["message"], "cpu high");
        assert_eq!(body[0]["startsAt"], "1970-01-01T00:00:01.000Z");
        assert_eq!(body[0]["endsAt"], "1970-01-01T00:02:02.000Z");
        assert_eq!(
            body[0]["generatorURL"],
            "https://ops.example/t/acme/p/cpu-load"
        );
        assert_eq!(body[1]["endsAt"], "1970-01-01T00:00:05.000Z");
        assert_eq!(body[1]["generatorURL"], "https://ops.example/t/acme/alerts");
    }
}
