//! In-app channels: each alert of the group lands in the tenant's notifications list (the
//! alerts page and its live feed), stored in the central database.

use async_trait::async_trait;

use super::super::store::{AlertStore, Notification};
use super::{Channel, ChannelError, Message};

pub struct InApp {
    pub store: AlertStore,
}

#[async_trait]
impl Channel for InApp {
    async fn send(&self, message: &Message<'_>) -> Result<(), ChannelError> {
        for a in &message.group.alerts {
            let n = Notification {
                id: 0,
                at: message.at,
                rule: a.rule.clone(),
                labels: a.labels.clone(),
                severity: a.severity.clone(),
                state: message.group.status.to_string(),
                message: a.message.clone(),
            };
            self.store.notify_in_app(message.tenant, &n).await?;
        }
        Ok(())
    }

    fn is_local(&self) -> bool {
        true
    }
}
