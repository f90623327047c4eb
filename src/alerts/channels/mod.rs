//! The boundary of an alert channel: a [`Channel`] sends one message — a [`Group`] of alerts
//! of one route — and says why it could not, as a [`ChannelError`]. Channel types are listed
//! in [`channel_for`], the one registry; each lives in its own file.

mod alertmanager;
mod email;
mod in_app;
mod subscribers;
mod webhook;

pub use alertmanager::Alertmanager;
pub use email::EmailChannel;
pub use in_app::InApp;
pub use subscribers::{SubscriberInbox, SubscriberMail};
pub use webhook::{Webhook, alertmanager_body, check_target, redacted, slack_body, webhook_client};

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
    #[error("{url}: cannot resolve: {message}")]
    Resolve { url: String, message: String },
    #[error("{url} resolves to {address}, an internal address not in alerts.allowed_targets")]
    Refused {
        url: String,
        address: std::net::IpAddr,
    },
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
    pub allowed_targets: std::sync::Arc<Vec<crate::config::IpNetwork>>,
    pub external_url: String,
}

/// The channel that sends for `config`.
pub fn channel_for(
    config: &ChannelConfig,
    context: &ChannelContext,
) -> Result<Box<dyn Channel>, ChannelError> {
    Ok(match config.kind {
        ChannelType::Webhook => Box::new(Webhook::new(
            config,
            context.http.clone(),
            context.allowed_targets.clone(),
        )?),
        ChannelType::Alertmanager => Box::new(Alertmanager::new(
            config,
            context.http.clone(),
            context.allowed_targets.clone(),
            &context.external_url,
        )?),
        ChannelType::Email => Box::new(EmailChannel::new(
            config,
            &context.smtp,
            &context.from,
            &context.external_url,
        )),
        ChannelType::InApp => Box::new(InApp {
            store: context.store.clone(),
        }),
    })
}

/// The built-in `subscribers` channel's two halves: in-app (local) and email (retried).
pub fn subscriber_channels(context: &ChannelContext) -> [Box<dyn Channel>; 2] {
    [
        Box::new(SubscriberInbox {
            store: context.store.clone(),
        }),
        Box::new(SubscriberMail::new(context)),
    ]
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

    fn firing_group() -> Group {
        Group {
            route: 0,
            status: "firing",
            group_labels: Default::default(),
            alerts: vec![],
        }
    }

    fn message_of(group: &Group) -> Message<'_> {
        Message {
            tenant: "acme",
            channel: "ops",
            group,
            at: 0,
        }
    }

    /// The connection itself resolves through the guard: a name that leads to an internal
    /// address is refused at connect time, whatever an earlier check saw — the answer to DNS
    /// rebinding. Listed networks pass.
    #[tokio::test]
    async fn the_webhook_client_refuses_internal_addresses_when_it_connects() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let url = format!("http://localhost:{port}/hook");
        let guarded = webhook_client(Default::default());
        let err = guarded.post(&url).send().await.unwrap_err();
        let chain = format!("{:?}", err);
        assert!(chain.contains("not in alerts.allowed_targets"), "{chain}");
        let allowed = webhook_client(std::sync::Arc::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]));
        assert_eq!(allowed.post(&url).send().await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn failures_are_typed_and_name_the_place() {
        let http = reqwest::Client::new();
        assert!(matches!(
            Webhook::new(
                &config(ChannelType::Webhook, None),
                http.clone(),
                Default::default()
            ),
            Err(ChannelError::NoUrl)
        ));
        // Nothing listens on port 9 of loopback: the request itself fails, naming the host but
        // not the secret path or query.
        let secret = "http://127.0.0.1:9/hooks/T0SECRET/B1SECRET?token=XSECRET";
        let channel = config(ChannelType::Webhook, Some(secret));
        let group = firing_group();
        let message = message_of(&group);
        // Loopback is internal: refused unless listed in alerts.allowed_targets.
        let closed = Webhook::new(&channel, http.clone(), Default::default()).unwrap();
        let err = closed.send(&message).await.unwrap_err();
        assert!(matches!(err, ChannelError::Refused { .. }), "{err}");
        assert!(!err.to_string().contains("SECRET"), "{err}");
        let allowed = std::sync::Arc::new(vec!["127.0.0.0/8".parse().unwrap()]);
        let hook = Webhook::new(&channel, http, allowed).unwrap();
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
        for internal in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
            "0.0.0.0",
        ] {
            assert!(
                webhook::is_internal(internal.parse().unwrap()),
                "{internal}"
            );
        }
        for public in ["93.184.216.34", "2606:4700::1111"] {
            assert!(!webhook::is_internal(public.parse().unwrap()), "{public}");
        }
        let email = EmailChannel::new(
            &config(ChannelType::Email, None),
            "no-port-here",
            "opsboard@example.test",
            "http://opsboard.test",
        );
        let err = email.send(&message).await.unwrap_err();
        assert_eq!(err.to_string(), "smtp `no-port-here`: not host:port");
    }

    /// A receiver's redirect is not followed: it could point anywhere, past the target check.
    #[tokio::test]
    async fn redirects_are_not_followed() {
        let followed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = followed.clone();
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(|| async { axum::response::Redirect::temporary("/elsewhere") }),
            )
            .route(
                "/elsewhere",
                axum::routing::post(move || {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    async { "ok" }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::connect(&crate::db::resolve_url(None, dir.path()))
            .await
            .unwrap();
        let store = crate::alerts::store::AlertStore::new(db);
        let notifier = crate::alerts::Notifier::new(
            store,
            crate::alerts::NotifySettings {
                smtp: "127.0.0.1:25".into(),
                from: "a@b.test".into(),
                attempts: 1,
                backoff: std::time::Duration::from_millis(1),
                allowed_targets: vec!["127.0.0.1".parse().unwrap()],
                external_url: "http://opsboard.test".into(),
            },
        );
        let hook = Webhook::new(
            &config(ChannelType::Webhook, Some(&url)),
            notifier.http_client(),
            std::sync::Arc::new(vec!["127.0.0.1".parse().unwrap()]),
        )
        .unwrap();
        let group = firing_group();
        let message = message_of(&group);
        let err = hook.send(&message).await.unwrap_err();
        assert!(
            matches!(err, ChannelError::Status { status: 307, .. }),
            "{err}"
        );
        assert!(!followed.load(std::sync::atomic::Ordering::SeqCst));
    }
}
