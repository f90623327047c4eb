//! Webhook channels: an HTTP POST of Alertmanager's JSON (`format: alertmanager`, version 4,
//! what most receivers take) or Slack's (`format: slack`); any 2xx is a delivery.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::super::routing::{Group, common_labels, text_lines};
use super::super::state::{Change, labels_key};
use super::{Channel, ChannelError, Message};
use crate::config::{ChannelConfig, IpNetwork, WebhookFormat};

pub struct Webhook {
    pub url: String,
    pub format: WebhookFormat,
    pub http: reqwest::Client,
    pub allowed_targets: Arc<Vec<IpNetwork>>,
}

impl Webhook {
    pub fn new(
        config: &ChannelConfig,
        http: reqwest::Client,
        allowed_targets: Arc<Vec<IpNetwork>>,
    ) -> Result<Self, ChannelError> {
        Ok(Self {
            url: config.url.clone().ok_or(ChannelError::NoUrl)?,
            format: config.format,
            http,
            allowed_targets,
        })
    }

    async fn check_target(&self) -> Result<(), ChannelError> {
        check_target(&self.url, &self.allowed_targets).await
    }
}

/// Refuses a URL whose host resolves to a loopback, private, link-local or unspecified address
/// not listed in `alerts.allowed_targets`. The guarded client's resolver repeats this when it
/// connects; this check is what covers a URL written with an IP address, which skips resolving.
pub async fn check_target(url: &str, allowed_targets: &[IpNetwork]) -> Result<(), ChannelError> {
    let parsed = url::Url::parse(url).map_err(|_| ChannelError::NoUrl)?;
    let host = parsed.host_str().unwrap_or("").trim_matches(['[', ']']);
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addresses =
        tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| ChannelError::Resolve {
                url: redacted(url),
                message: e.to_string(),
            })?;
    for address in addresses {
        let ip = address.ip();
        if is_internal(ip) && !allowed_targets.iter().any(|n| n.contains(ip)) {
            return Err(ChannelError::Refused {
                url: redacted(url),
                address: ip,
            });
        }
    }
    Ok(())
}

/// The HTTP client webhooks are sent with: no redirects (a receiver's redirect could lead
/// anywhere), and a resolver that drops internal addresses not in `allowed_targets` — so the
/// address a connection uses is the one that was checked, and a name that resolves to a public
/// address for the check and to an internal one a moment later (DNS rebinding) gets nowhere.
pub fn webhook_client(allowed_targets: Arc<Vec<IpNetwork>>) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver { allowed_targets }))
        .build()
        .unwrap_or_default()
}

struct GuardedResolver {
    allowed_targets: Arc<Vec<IpNetwork>>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.allowed_targets.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<std::net::SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| !is_internal(a.ip()) || allowed.iter().any(|n| n.contains(a.ip())))
                .collect();
            if usable.is_empty() {
                let first = found
                    .first()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                return Err(format!(
                    "{host} resolves to {first}, an internal address not in alerts.allowed_targets"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(usable.into_iter());
            Ok(addrs)
        })
    }
}

/// Addresses a webhook from a tenant's YAML must not reach unless allowed.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                // Carrier-grade NAT, 100.64.0.0/10.
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
            }
        },
    }
}

#[async_trait]
impl Channel for Webhook {
    async fn send(&self, message: &Message<'_>) -> Result<(), ChannelError> {
        let body = match self.format {
            WebhookFormat::Slack => slack_body(message.group),
            _ => alertmanager_body(message.channel, message.group),
        };
        self.post_json(&body).await
    }
}

impl Webhook {
    /// POSTs `body` to the checked target; any 2xx is a delivery.
    pub async fn post_json(&self, body: &Value) -> Result<(), ChannelError> {
        self.check_target().await?;
        let response = self
            .http
            .post(&self.url)
            .json(body)
            .send()
            .await
            .map_err(|source| ChannelError::Request {
                url: redacted(&self.url),
                source: source.without_url(),
            })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(ChannelError::Status {
                url: redacted(&self.url),
                status: response.status().as_u16(),
            })
        }
    }
}

/// A webhook URL as logs and the delivery log may show it: scheme, host and port only. Paths
/// and queries of chat webhooks are their secrets.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let hidden = if u.path() == "/" && u.query().is_none() {
                ""
            } else {
                "/…"
            };
            format!(
                "{}://{}{port}{hidden}",
                u.scheme(),
                u.host_str().unwrap_or("")
            )
        }
        Err(_) => "(webhook url)".into(),
    }
}

pub(super) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
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
                "fingerprint": format!("{:016x}", crc32fast::hash(labels_key(&a.labels).as_bytes())),
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
        "groupKey": format!("{channel}:{}", labels_key(&g.group_labels)),
        "alerts": alerts,
    })
}

pub fn slack_body(g: &Group) -> Value {
    json!({ "text": text_lines(g) })
}
