//! Getting alerts to people: each cycle's alerts are grouped per route ([`super::routing`]),
//! and each group goes to each of the route's channels ([`super::channels`]). Remote channels
//! are retried with exponential backoff in their own task (retries must not hold up the next
//! evaluation) and every outcome is written to the tenant's delivery log.
//!
//! Messages of one alert group to one channel go out in the order they were dispatched, one
//! at a time (a [`Lane`]), and an alert a newer message speaks of is taken out of an older
//! message still waiting to retry: a "firing" that failed once can never arrive after the
//! "resolved" that followed it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use super::channels::{
    Channel, ChannelContext, ChannelError, Message, channel_for, subscriber_channels,
};
use super::routing::{Group, Outgoing, group};
use super::state::labels_key;
use super::store::{AlertStore, Delivery as LoggedDelivery};
use crate::config::{SUBSCRIBERS, TenantAlerts};

#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub smtp: String,
    pub from: String,
    pub attempts: u32,
    pub backoff: Duration,
    /// Internal addresses webhooks may reach (`alerts.allowed_targets`).
    pub allowed_targets: Vec<crate::config::IpNetwork>,
    /// This server's address for links in notifications, without a trailing `/`.
    pub external_url: String,
}

/// One message's place: whose, which channel, which lane and its number there.
struct Delivery<'a> {
    tenant: &'a str,
    channel: &'a str,
    lane: &'a Lane,
    number: u64,
    at: i64,
}

#[derive(Clone)]
pub struct Notifier {
    store: AlertStore,
    context: ChannelContext,
    settings: NotifySettings,
    lanes: Arc<parking_lot::Mutex<HashMap<String, Arc<Lane>>>>,
}

/// The deliveries of one alert group to one channel.
#[derive(Default)]
struct Lane {
    /// Numbers the messages in dispatch order.
    next: AtomicU64,
    /// The newest message that speaks of each alert (by label set).
    newest: parking_lot::Mutex<HashMap<String, u64>>,
    /// Completion of the last message dispatched: the next one waits for it.
    tail: parking_lot::Mutex<Option<Shared<BoxFuture<'static, ()>>>>,
}

impl Lane {
    /// Takes a place in the lane: the message's number and the delivery it must wait for.
    fn enter(&self, g: &Group) -> (u64, Option<Shared<BoxFuture<'static, ()>>>, Done) {
        let number = self.next.fetch_add(1, Ordering::SeqCst);
        let mut newest = self.newest.lock();
        for a in &g.alerts {
            newest.insert(labels_key(&a.labels), number);
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done: BoxFuture<'static, ()> = rx.map(|_| ()).boxed();
        let previous = self.tail.lock().replace(done.shared());
        (number, previous, Done(Some(tx)))
    }

    /// Once a message is done, the alerts it was the newest word on need no entry: messages
    /// finish in order, so no older one can still ask. Keeps the map to alerts in flight.
    fn forget(&self, g: &Group, number: u64) {
        let mut newest = self.newest.lock();
        for a in &g.alerts {
            let key = labels_key(&a.labels);
            if newest.get(&key) == Some(&number) {
                newest.remove(&key);
            }
        }
    }

    /// The group without the alerts a newer message speaks of; none when nothing is left.
    fn current(&self, g: &Group, number: u64) -> Option<Group> {
        let newest = self.newest.lock();
        let alerts: Vec<Outgoing> = g
            .alerts
            .iter()
            .filter(|a| newest.get(&labels_key(&a.labels)) == Some(&number))
            .cloned()
            .collect();
        (!alerts.is_empty()).then(|| Group {
            alerts,
            ..g.clone()
        })
    }
}

/// Signals the next message of the lane when dropped (sent, failed, superseded or panicked).
struct Done(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for Done {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

impl Notifier {
    pub fn new(store: AlertStore, settings: NotifySettings) -> Self {
        let allowed_targets = Arc::new(settings.allowed_targets.clone());
        let context = ChannelContext {
            store: store.clone(),
            http: super::channels::webhook_client(allowed_targets.clone()),
            smtp: settings.smtp.clone(),
            from: settings.from.clone(),
            allowed_targets,
            external_url: settings.external_url.clone(),
        };
        Self {
            store,
            context,
            settings,
            lanes: Arc::default(),
        }
    }

    /// The HTTP client webhooks are sent with (no redirects followed).
    /// This server's address for links in notifications, without a trailing `/`.
    pub fn external_url(&self) -> &str {
        &self.settings.external_url
    }

    pub fn http_client(&self) -> reqwest::Client {
        self.context.http.clone()
    }

    fn lane(&self, tenant: &str, channel: &str, g: &Group) -> Arc<Lane> {
        let key = format!(
            "{tenant}\u{1f}{channel}\u{1f}{}\u{1f}{}",
            g.route,
            labels_key(&g.group_labels)
        );
        self.lanes.lock().entry(key).or_default().clone()
    }

    /// Sends one cycle's alerts; returns the tasks of remote deliveries.
    pub async fn dispatch(
        &self,
        tenant: &str,
        config: &TenantAlerts,
        alerts: Vec<Outgoing>,
        now: i64,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![];
        for g in group(&config.routes, alerts) {
            let g = Arc::new(g);
            for name in &config.routes[g.route].channels {
                let channels: Vec<Arc<dyn Channel>> = if name == SUBSCRIBERS {
                    subscriber_channels(&self.context).map(Arc::from).into()
                } else {
                    let Some(channel_config) = config.channels.get(name) else {
                        continue;
                    };
                    match channel_for(channel_config, &self.context) {
                        Ok(channel) => vec![Arc::from(channel)],
                        Err(e) => {
                            self.log(tenant, name, &g, now, 0, Some(Err(e))).await;
                            continue;
                        }
                    }
                };
                for channel in channels {
                    tasks.extend(self.deliver(tenant, name, &g, channel, now).await);
                }
            }
        }
        tasks
    }

    /// One group to one channel: at once for a local channel, else in its lane's turn.
    async fn deliver(
        &self,
        tenant: &str,
        name: &str,
        g: &Arc<Group>,
        channel: Arc<dyn Channel>,
        now: i64,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if channel.is_local() {
            let message = Message {
                tenant,
                channel: name,
                group: g,
                at: now,
            };
            if let Err(e) = channel.send(&message).await {
                tracing::error!(%tenant, channel = %name, error = %e, "local delivery failed");
            }
            return None;
        }
        let lane = self.lane(tenant, name, g);
        let (number, previous, done) = lane.enter(g);
        let (this, tenant, name, g) = (
            self.clone(),
            tenant.to_string(),
            name.to_string(),
            g.clone(),
        );
        Some(tokio::spawn(async move {
            let _done = done;
            if let Some(previous) = previous {
                previous.await;
            }
            let delivery = Delivery {
                tenant: &tenant,
                channel: &name,
                lane: &lane,
                number,
                at: now,
            };
            let (attempts, result) = this.send_in_turn(&*channel, &delivery, &g).await;
            lane.forget(&g, number);
            this.log(&tenant, &name, &g, now, attempts, result).await;
        }))
    }

    /// Sends the message's alerts no newer message speaks of, retrying with backoff; none
    /// when every alert was superseded before it went out.
    async fn send_in_turn(
        &self,
        channel: &dyn Channel,
        d: &Delivery<'_>,
        g: &Group,
    ) -> (u32, Option<Result<(), ChannelError>>) {
        let attempts = self.settings.attempts.max(1);
        let mut delay = self.settings.backoff;
        let mut attempt = 1;
        loop {
            let Some(current) = d.lane.current(g, d.number) else {
                tracing::info!(tenant = %d.tenant, channel = %d.channel, "delivery superseded by a newer message");
                return (attempt - 1, None);
            };
            let message = Message {
                tenant: d.tenant,
                channel: d.channel,
                group: &current,
                at: d.at,
            };
            let result = channel.send(&message).await;
            if result.is_ok() || attempt == attempts {
                return (attempt, Some(result));
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
        }
    }

    /// One line of the tenant's delivery log.
    async fn log(
        &self,
        tenant: &str,
        channel: &str,
        g: &Group,
        now: i64,
        attempts: u32,
        result: Option<Result<(), ChannelError>>,
    ) {
        let outcome = match &result {
            Some(Ok(())) => "sent",
            Some(Err(_)) => "failed",
            None => "superseded",
        };
        let delivery = LoggedDelivery {
            at: now,
            channel: channel.to_string(),
            kind: g.status.to_string(),
            alerts: g.alerts.len() as i64,
            attempts: attempts as i64,
            outcome: outcome.into(),
            error: result
                .and_then(Result::err)
                .map(|e| e.to_string())
                .unwrap_or_default(),
        };
        if delivery.outcome == "failed" {
            tracing::warn!(%tenant, %channel, error = %delivery.error, "alert delivery failed");
        }
        if let Err(e) = self.store.log_delivery(tenant, &delivery).await {
            tracing::error!(%tenant, error = %e, "cannot write the delivery log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::state::Change;
    use crate::config::{ChannelConfig, ChannelType, RouteConfig, WebhookFormat};
    use std::collections::BTreeMap;

    /// A receiver that fails its first request and records the status of every body it took.
    async fn flaky_receiver() -> (String, Arc<parking_lot::Mutex<Vec<String>>>) {
        let seen: Arc<parking_lot::Mutex<Vec<String>>> = Arc::default();
        let calls = Arc::new(AtomicU64::new(0));
        let (seen2, calls2) = (seen.clone(), calls.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::Json<serde_json::Value>| {
                let (seen, calls) = (seen2.clone(), calls2.clone());
                async move {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    seen.lock()
                        .push(body["status"].as_str().unwrap_or("").to_string());
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, seen)
    }

    fn alert(change: Change) -> Outgoing {
        Outgoing {
            rule: "cpu".into(),
            severity: "high".into(),
            labels: [("alertname", "cpu"), ("host", "a")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            message: "cpu on a".into(),
            change,
            starts_at: 0,
            ends_at: None,
            value: Some(95.0),
            panel: None,
            repeat_ms: 3_600_000,
            event: None,
        }
    }

    #[tokio::test]
    async fn a_failed_firing_never_arrives_after_its_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::connect(&crate::db::resolve_url(None, dir.path()))
            .await
            .unwrap();
        let store = AlertStore::new(db);
        let settings = NotifySettings {
            smtp: "127.0.0.1:25".into(),
            from: "opsboard@example.test".into(),
            attempts: 3,
            backoff: Duration::from_millis(300),
            allowed_targets: vec!["127.0.0.1".parse().unwrap()],
            external_url: "http://opsboard.test".into(),
        };
        let notifier = Notifier::new(store.clone(), settings);
        let (url, seen) = flaky_receiver().await;
        let channel = ChannelConfig {
            name: "chat".into(),
            kind: ChannelType::Webhook,
            url: Some(url),
            format: WebhookFormat::Alertmanager,
            to: vec![],
            from: None,
            smtp: None,
        };
        let config = TenantAlerts {
            rules: vec![],
            channels: [("chat".to_string(), channel)].into(),
            routes: vec![RouteConfig {
                channels: vec!["chat".into()],
                severity: vec![],
                matchers: BTreeMap::new(),
                group_by: vec![],
                repeat_interval: None,
                r#continue: false,
            }],
        };
        let mut tasks = notifier
            .dispatch("acme", &config, vec![alert(Change::Firing)], 1_000)
            .await;
        // The firing failed once and waits to retry when the alert resolves.
        tokio::time::sleep(Duration::from_millis(50)).await;
        tasks.extend(
            notifier
                .dispatch("acme", &config, vec![alert(Change::Resolved)], 2_000)
                .await,
        );
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*seen.lock(), vec!["resolved".to_string()]);
        let log = store.deliveries("acme", 10).await.unwrap();
        let outcomes: Vec<&str> = log.iter().map(|d| d.outcome.as_str()).collect();
        assert!(outcomes.contains(&"superseded"), "{outcomes:?}");
        assert!(outcomes.contains(&"sent"), "{outcomes:?}");
        let lanes = notifier.lanes.lock();
        assert!(
            lanes.values().all(|lane| lane.newest.lock().is_empty()),
            "nothing kept once every message is done"
        );
    }
}
