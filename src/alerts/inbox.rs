//! What alerting keeps per person and per event rule in the central database: in-app notices
//! (a tenant's feed, or one subscriber's), per-user subscriptions, and event rules' books.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::AlertError;
use super::events::EventBook;
use super::state::{Labels, labels_key};
use super::store::{AlertStore, labels_of};

#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub id: i64,
    pub at: i64,
    pub rule: String,
    pub labels: Labels,
    pub severity: String,
    pub state: String,
    pub message: String,
    /// The event's picture (an attachment id of the tenant).
    pub attachment: Option<String>,
    /// Where the event is shown (a path of this server).
    pub link: Option<String>,
}

/// Which of a tenant's alerts reach one user, and how.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub tenant: String,
    /// Severities that reach the user (empty: all).
    pub severities: Vec<String>,
    /// Rules that reach the user (empty: all).
    pub rules: Vec<String>,
    pub email: bool,
    pub in_app: bool,
}

impl Subscription {
    pub fn covers(&self, rule: &str, severity: &str) -> bool {
        (self.severities.is_empty() || self.severities.iter().any(|s| s == severity))
            && (self.rules.is_empty() || self.rules.iter().any(|r| r == rule))
    }
}

/// A subscriber as the `subscribers` channel sees it.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub user_id: i64,
    pub email: String,
    pub subscription: Subscription,
}

fn notification_of(r: &sqlx::any::AnyRow) -> Result<Notification, sqlx::Error> {
    let labels: String = r.try_get("labels")?;
    Ok(Notification {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        rule: r.try_get("rule")?,
        labels: labels_of(&labels),
        severity: r.try_get("severity")?,
        state: r.try_get("state")?,
        message: r.try_get("message")?,
        attachment: r.try_get("attachment")?,
        link: r.try_get("link")?,
    })
}

fn list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// A row with `tenant, severities, rules, email, in_app` of `alert_subscriptions`.
fn subscription_of(r: &sqlx::any::AnyRow) -> Result<Subscription, sqlx::Error> {
    Ok(Subscription {
        tenant: r.try_get("tenant")?,
        severities: list(&r.try_get::<String, _>("severities")?),
        rules: list(&r.try_get::<String, _>("rules")?),
        email: r.try_get::<i64, _>("email")? != 0,
        in_app: r.try_get::<i64, _>("in_app")? != 0,
    })
}

impl AlertStore {
    /// Adds a notice to the tenant's feed (`user: None`) or to one subscriber's.
    pub async fn notify_in_app(
        &self,
        tenant: &str,
        n: &Notification,
        user: Option<i64>,
    ) -> Result<(), AlertError> {
        sqlx::query(
            "INSERT INTO alert_notifications \
             (tenant, at, rule, labels, severity, state, message, attachment, link, user_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(tenant)
        .bind(n.at)
        .bind(&n.rule)
        .bind(labels_key(&n.labels))
        .bind(&n.severity)
        .bind(&n.state)
        .bind(&n.message)
        .bind(&n.attachment)
        .bind(&n.link)
        .bind(user)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// The tenant's feed, newest first.
    pub async fn notifications(
        &self,
        tenant: &str,
        limit: i64,
    ) -> Result<Vec<Notification>, AlertError> {
        let rows = sqlx::query(
            "SELECT id, at, rule, labels, severity, state, message, attachment, link \
             FROM alert_notifications \
             WHERE tenant = $1 AND user_id IS NULL ORDER BY id DESC LIMIT $2",
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(notification_of).collect::<Result<_, _>>()?)
    }

    /// One user's notices of `tenant`, newest first.
    pub async fn user_notifications(
        &self,
        user: i64,
        tenant: &str,
        limit: i64,
    ) -> Result<Vec<Notification>, AlertError> {
        let rows = sqlx::query(
            "SELECT id, at, rule, labels, severity, state, message, attachment, link \
             FROM alert_notifications \
             WHERE user_id = $1 AND tenant = $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(user)
        .bind(tenant)
        .bind(limit)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(notification_of).collect::<Result<_, _>>()?)
    }

    /// The user's subscriptions, by tenant.
    pub async fn subscriptions(&self, user: i64) -> Result<Vec<Subscription>, AlertError> {
        let rows = sqlx::query(
            "SELECT tenant, severities, rules, email, in_app FROM alert_subscriptions \
             WHERE user_id = $1 ORDER BY tenant",
        )
        .bind(user)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(subscription_of)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(AlertError::from)
    }

    /// Sets (or, with neither email nor in-app, removes) the user's subscription to a tenant.
    pub async fn subscribe(&self, user: i64, s: &Subscription) -> Result<(), AlertError> {
        if !s.email && !s.in_app {
            sqlx::query("DELETE FROM alert_subscriptions WHERE user_id = $1 AND tenant = $2")
                .bind(user)
                .bind(&s.tenant)
                .execute(&self.db.pool)
                .await?;
            return Ok(());
        }
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO alert_subscriptions (user_id, tenant, severities, rules, email, in_app) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, tenant) DO UPDATE SET \
             severities = excluded.severities, rules = excluded.rules, email = excluded.email, \
             in_app = excluded.in_app",
        )
        .bind(user)
        .bind(&s.tenant)
        .bind(json(&s.severities))
        .bind(json(&s.rules))
        .bind(s.email as i64)
        .bind(s.in_app as i64)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// The tenant's subscribers who may still read it: enabled users who are its members, or
    /// global admins. A user who lost access hears nothing more.
    pub async fn subscribers(&self, tenant: &str) -> Result<Vec<Subscriber>, AlertError> {
        let rows = sqlx::query(
            "SELECT s.user_id, u.email AS address, s.tenant, s.severities, s.rules, s.email, s.in_app \
             FROM alert_subscriptions s JOIN users u ON u.id = s.user_id \
             WHERE s.tenant = $1 AND u.disabled = 0 AND (u.is_admin = 1 OR EXISTS \
             (SELECT 1 FROM user_tenants m WHERE m.user_id = s.user_id AND m.tenant = $1)) \
             ORDER BY s.user_id",
        )
        .bind(tenant)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Subscriber {
                    user_id: r.try_get("user_id")?,
                    email: r.try_get("address")?,
                    subscription: subscription_of(r)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(AlertError::from)
    }

    /// An event rule's book as last stored.
    pub async fn event_book(
        &self,
        tenant: &str,
        rule: &str,
    ) -> Result<Option<EventBook>, AlertError> {
        let text: Option<String> = sqlx::query_scalar(
            "SELECT book FROM alert_event_books WHERE tenant = $1 AND rule = $2",
        )
        .bind(tenant)
        .bind(rule)
        .fetch_optional(&self.db.pool)
        .await?;
        text.map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| AlertError::Invalid(format!("event rule `{rule}`'s stored state: {e}")))
    }

    pub async fn save_event_book(
        &self,
        tenant: &str,
        rule: &str,
        book: &EventBook,
    ) -> Result<(), AlertError> {
        let text = serde_json::to_string(book)
            .map_err(|e| AlertError::Invalid(format!("event rule `{rule}`: {e}")))?;
        sqlx::query(
            "INSERT INTO alert_event_books (tenant, rule, book) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant, rule) DO UPDATE SET book = excluded.book",
        )
        .bind(tenant)
        .bind(rule)
        .bind(text)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }
}
