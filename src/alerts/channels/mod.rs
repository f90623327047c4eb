//! The boundary of an alert channel: a [`Channel`] sends one message — a [`Group`] of alerts
//! of one route — and says why it could not, as a [`ChannelError`]. Channel types are listed
//! in [`channel_for`], the one registry; each lives in its own file.

mod email;
mod in_app;
mod webhook;

pub use email::EmailChannel;
pub use in_app::InApp;
pub use webhook::{Webhook, alertmanager_body, slack_body};

use async_trait::async_trait;

use super::AlertError;
use super::routing::Group;
use super::store::AlertStore;
use crate::config::{ChannelConfig, ChannelType};

/// One message on its way out.
pub struct Message<'a> {
    pub tenant: &'a str,
    /// The channel's name (Alertmanager's `receiver`).
    pub channel: &'a str,
    pub group: &'a Group,
    /// Evaluation time, epoch ms.
    pub at: i64,
}

#[async_trait]
pub trait Channel: Send + Sync {
    async fn send(&self, message: &Message<'_>) -> Result<(), ChannelError>;

    /// Local channels deliver at once, inside the cycle: no retries, no delivery log.
    fn is_local(&self) -> bool {
        false
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("webhook without url")]
    NoUrl,
    #[error("{url}: {source}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("smtp `{server}`: {message}")]
    Smtp { server: String, message: String },
    #[error("address `{address}`: {message}")]
    Address { address: String, message: String },
    #[error(transparent)]
    Store(#[from] AlertError),
}

/// What every channel may draw on.
#[derive(Clone)]
pub struct ChannelContext {
    pub store: AlertStore,
    pub http: reqwest::Client,
    pub smtp: String,
    pub from: String,
}

/// The channel that sends for `config`.
pub fn channel_for(
    config: &ChannelConfig,
    context: &ChannelContext,
) -> Result<Box<dyn Channel>, ChannelError> {
    Ok(match config.kind {
        ChannelType::Webhook => Box::new(Webhook::new(config, context.http.clone())?),
        ChannelType::Email => Box::new(EmailChannel::new(config, &context.smtp, &context.from)),
        ChannelType::InApp => Box::new(InApp {
            store: context.store.clone(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::routing::Group;
    use crate::config::WebhookFormat;

    fn config(kind: ChannelType, url: Option<&str>) -> ChannelConfig {
        ChannelConfig {
            name: "ops".into(),
            kind,
            url: url.map(str::to_string),
            format: WebhookFormat::Alertmanager,
            to: vec![],
            from: None,
            smtp: None,
        }
    }

    #[tokio::test]
    async fn failures_are_typed_and_name_the_place() {
        let http = reqwest::Client::new();
        assert!(matches!(
            Webhook::new(&config(ChannelType::Webhook, None), http.clone()),
            Err(ChannelError::NoUrl)
        ));
        // Nothing listens on port 9 of loopback: the request itself fails, naming the host but
        // not the secret path or query.
        let secret = "http://127.0.0.1:9/hooks/T0SECRET/B1SECRET?token=XSECRET";
        let hook = Webhook::new(&config(ChannelType::Webhook, Some(secret)), http).unwrap();
        let group = Group {
            route: 0,
            status: "firing",
            group_labels: Default::default(),
            alerts: vec![],
        };
        let message = Message {
            tenant: "acme",
            channel: "ops",
            group: &group,
            at: 0,
        };
        let err = hook.send(&message).await.unwrap_err();
        assert!(matches!(err, ChannelError::Request { .. }), "{err}");
        assert!(
            err.to_string().starts_with("http://127.0.0.1:9/…: "),
            "{err}"
        );
        assert!(!format!("{err} {err:?}").contains("SECRET"), "{err:?}");
        assert_eq!(
            webhook::redacted("https://hooks.example/"),
            "https://hooks.example"
        );
        assert_eq!(webhook::redacted("not a url"), "(webhook url)");
        let email = EmailChannel::new(
            &config(ChannelType::Email, None),
            "no-port-here",
            "opsboard@example.test",
        );
        let err = email.send(&message).await.unwrap_err();
        assert_eq!(err.to_string(), "smtp `no-port-here`: not host:port");
    }
}
