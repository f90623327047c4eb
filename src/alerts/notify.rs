//! Getting alerts to people: each cycle's alerts are grouped per route ([`super::routing`]),
//! and each group goes to each of the route's channels ([`super::channels`]). Remote channels
//! are retried with exponential backoff in their own task (retries must not hold up the next
//! evaluation) and every attempt's outcome is written to the tenant's delivery log.

use std::sync::Arc;
use std::time::Duration;

use super::channels::{Channel, ChannelContext, ChannelError, Message, channel_for};
use super::routing::{Group, Outgoing, group};
use super::store::{AlertStore, Delivery};
use crate::config::TenantAlerts;

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
    context: ChannelContext,
    settings: NotifySettings,
}

impl Notifier {
    pub fn new(store: AlertStore, settings: NotifySettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let context = ChannelContext {
            store: store.clone(),
            http,
            smtp: settings.smtp.clone(),
            from: settings.from.clone(),
        };
        Self {
            store,
            context,
            settings,
        }
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
                let Some(channel_config) = config.channels.get(name) else {
                    continue;
                };
                let channel = match channel_for(channel_config, &self.context) {
                    Ok(channel) => Arc::<dyn Channel>::from(channel),
                    Err(e) => {
                        self.log(tenant, name, &g, now, 0, Err(e)).await;
                        continue;
                    }
                };
                if channel.is_local() {
                    let message = Message {
                        tenant,
                        channel: name,
                        group: &g,
                        at: now,
                    };
                    if let Err(e) = channel.send(&message).await {
                        tracing::error!(%tenant, channel = %name, error = %e, "local delivery failed");
                    }
                    continue;
                }
                let (this, tenant, name, g) =
                    (self.clone(), tenant.to_string(), name.clone(), g.clone());
                tasks.push(tokio::spawn(async move {
                    let message = Message {
                        tenant: &tenant,
                        channel: &name,
                        group: &g,
                        at: now,
                    };
                    let (attempts, result) = this.send_with_retries(&*channel, &message).await;
                    this.log(&tenant, &name, &g, now, attempts, result).await;
                }));
            }
        }
        tasks
    }

    async fn send_with_retries(
        &self,
        channel: &dyn Channel,
        message: &Message<'_>,
    ) -> (u32, Result<(), ChannelError>) {
        let attempts = self.settings.attempts.max(1);
        let mut delay = self.settings.backoff;
        let mut attempt = 1;
        loop {
            let result = channel.send(message).await;
            if result.is_ok() || attempt == attempts {
                return (attempt, result);
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
        result: Result<(), ChannelError>,
    ) {
        let delivery = Delivery {
            at: now,
            channel: channel.to_string(),
            kind: g.status.to_string(),
            alerts: g.alerts.len() as i64,
            attempts: attempts as i64,
            outcome: if result.is_ok() { "sent" } else { "failed" }.into(),
            error: result.err().map(|e| e.to_string()).unwrap_or_default(),
        };
        if delivery.outcome == "failed" {
            tracing::warn!(%tenant, %channel, error = %delivery.error, "alert delivery failed");
        }
        if let Err(e) = self.store.log_delivery(tenant, &delivery).await {
            tracing::error!(%tenant, error = %e, "cannot write the delivery log");
        }
    }
}
