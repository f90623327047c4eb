//! Alerting: rules from `tenants/<tenant>/alerts/*.yaml` (loaded and checked with the rest of
//! the tenant's configuration), evaluated on the injected clock; instance state, silences and
//! the delivery log in the central database; every change appended to the tenant's `alerts`
//! table; notifications routed and grouped, then sent by one [`Channel`] per type (webhook,
//! email, in-app; `channels/`).

mod channels;
mod cycle;
mod engine;
mod event_rules;
mod events;
mod history;
mod inbox;
mod matcher;
mod notify;
mod observation;
mod routing;
mod rule_text;
mod state;
mod store;

pub use channels::{
    Channel, ChannelError, Message, alertmanager_body, check_target, redacted, slack_body,
    webhook_client,
};
pub use engine::AlertEngine;
pub use events::EventBook;
pub use history::AlertEvent;
pub use inbox::{Notification, Subscriber, Subscription};
pub use matcher::{MatchOp, Matcher, Matchers};
pub use notify::{Notifier, NotifySettings};
pub use routing::{EventNotice, Group, Outgoing, group};
pub use state::{AlertState, Change, Instance, Labels, labels_key};
pub use store::{AlertStore, Delivery, Silence, StoredInstance};

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error("cannot record alert history: {0}")]
    History(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}
