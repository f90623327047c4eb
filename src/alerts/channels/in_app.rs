//! In-app channels: each alert of the group lands in the tenant's notifications list (the
//! alerts page and its live feed), stored in the central database; an event's notice keeps
//! its picture and link.

use async_trait::async_trait;

use super::super::inbox::Notification;
use super::super::routing::Outgoing;
use super::super::store::AlertStore;
use super::{Channel, ChannelError, Message};

pub struct InApp {
    pub store: AlertStore,
}

#[async_trait]
impl Channel for InApp {
    async fn send(&self, message: &Message<'_>) -> Result<(), ChannelError> {
        for a in &message.group.alerts {
            let n = notice(a, message.group.status, message.at);
            self.store.notify_in_app(message.tenant, &n, None).await?;
        }
        Ok(())
    }

    fn is_local(&self) -> bool {
        true
    }
}

/// The in-app notice of one alert.
pub fn notice(a: &Outgoing, status: &str, at: i64) -> Notification {
    Notification {
        id: 0,
        at,
        rule: a.rule.clone(),
        labels: a.labels.clone(),
        severity: a.severity.clone(),
        state: status.to_string(),
        message: a.message.clone(),
        attachment: a.event.as_ref().and_then(|e| e.attachment.clone()),
        link: a.event.as_ref().map(|e| e.link.clone()),
    }
}
