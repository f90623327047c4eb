//! The built-in `subscribers` channel: the tenant's users who subscribed on `/account` get the
//! alerts their subscription covers (severities, rules) in their own in-app list and by email
//! to their address. Read at each send, so a new subscription counts at once and a user who
//! lost access to the tenant (or was disabled) hears nothing more. Two halves, as for the
//! other channels: the in-app one local, the email one retried — and a retry mails only the
//! subscribers the earlier attempts did not reach.

use std::collections::HashSet;

use async_trait::async_trait;

use super::super::inbox::Subscriber;
use super::super::routing::Group;
use super::super::store::AlertStore;
use super::email::EmailChannel;
use super::in_app::notice;
use super::{Channel, ChannelContext, ChannelError, Message};

/// The alerts of the group `s` covers, as a group of their own.
fn covered(s: &Subscriber, g: &Group) -> Option<Group> {
    let alerts: Vec<_> = (g.alerts.iter())
        .filter(|a| s.subscription.covers(&a.rule, &a.severity))
        .cloned()
        .collect();
    (!alerts.is_empty()).then(|| Group {
        alerts,
        ..g.clone()
    })
}

pub struct SubscriberInbox {
    pub store: AlertStore,
}

#[async_trait]
impl Channel for SubscriberInbox {
    async fn send(&self, message: &Message<'_>) -> Result<(), ChannelError> {
        for s in self.store.subscribers(message.tenant).await? {
            if !s.subscription.in_app {
                continue;
            }
            let Some(g) = covered(&s, message.group) else {
                continue;
            };
            for a in &g.alerts {
                let n = notice(a, g.status, message.at);
                (self.store)
                    .notify_in_app(message.tenant, &n, Some(s.user_id))
                    .await?;
            }
        }
        Ok(())
    }

    fn is_local(&self) -> bool {
        true
    }
}

pub struct SubscriberMail {
    context: ChannelContext,
    /// Users this message reached on an earlier attempt.
    mailed: parking_lot::Mutex<HashSet<i64>>,
}

impl SubscriberMail {
    pub fn new(context: &ChannelContext) -> Self {
        Self {
            context: context.clone(),
            mailed: parking_lot::Mutex::default(),
        }
    }
}

#[async_trait]
impl Channel for SubscriberMail {
    async fn send(&self, message: &Message<'_>) -> Result<(), ChannelError> {
        let mut first_error = None;
        for s in self.context.store.subscribers(message.tenant).await? {
            if !s.subscription.email || self.mailed.lock().contains(&s.user_id) {
                continue;
            }
            let Some(g) = covered(&s, message.group) else {
                continue;
            };
            let mail = EmailChannel {
                smtp: self.context.smtp.clone(),
                from: self.context.from.clone(),
                to: vec![s.email.clone()],
                external_url: self.context.external_url.clone(),
            };
            let theirs = Message {
                group: &g,
                ..*message
            };
            match mail.send(&theirs).await {
                Ok(()) => {
                    self.mailed.lock().insert(s.user_id);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
