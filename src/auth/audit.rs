//! The audit log: who did what, in which tenant, from where, and how it ended. Written by the
//! auth service itself for everything it changes, and by the HTTP layer for exports and denied
//! access. Details are built from names and counts — never from passwords, keys or tokens.

use serde::Serialize;
use serde_json::Value;
// Only fixed column lists and numbered placeholders are formatted into SQL; values are bound.
use sqlx::{AssertSqlSafe, Row};

use super::{Auth, AuthError};

/// Longest details text kept per entry, in bytes.
const MAX_DETAILS: usize = 4096;

/// At most `max` bytes of `text`, cut at a character boundary, with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Who is acting, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub ip: Option<String>,
}

impl Actor {
    pub fn new(name: impl Into<String>, ip: Option<String>) -> Self {
        Self {
            name: name.into(),
            ip,
        }
    }

    /// The command line, as the operating system user running it.
    pub fn cli() -> Self {
        let who = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Self::new(format!("cli:{who}"), None)
    }

    pub fn system() -> Self {
        Self::new("system", None)
    }
}

#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub tenant: Option<String>,
    pub action: &'static str,
    pub outcome: &'static str,
    pub details: Value,
}

impl AuditEvent {
    pub fn ok(action: &'static str, details: Value) -> Self {
        Self {
            tenant: None,
            action,
            outcome: "ok",
            details,
        }
    }

    pub fn failed(action: &'static str, details: Value) -> Self {
        Self {
            outcome: "failed",
            ..Self::ok(action, details)
        }
    }

    pub fn denied(action: &'static str, details: Value) -> Self {
        Self {
            outcome: "denied",
            ..Self::ok(action, details)
        }
    }

    pub fn in_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub tenant: Option<String>,
    pub ip: Option<String>,
    pub action: String,
    pub outcome: String,
    pub details: Value,
}

/// Filters for reading the log; every field narrows.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct AuditFilter {
    pub tenant: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: Option<i64>,
}

impl Auth {
    /// Appends one entry. A failure to audit is logged, never turned into a failed request:
    /// the action it describes has already happened.
    pub async fn audit(&self, actor: &Actor, event: AuditEvent) {
        // Parts of an entry can come from a request (a path's tenant, a typed email, a URL):
        // a tenant that is no valid tenant name is kept out of the tenant column, and long
        // text is cut, so the log stays searchable and small whatever a caller sends.
        let mut details = event.details.clone();
        let tenant = match event.tenant.as_deref() {
            Some(t) if crate::schema::is_valid_tenant_name(t) => Some(t),
            Some(t) => {
                if let Value::Object(map) = &mut details {
                    map.insert("tenant_given".into(), Value::from(cut(t, 64)));
                }
                None
            }
            None => None,
        };
        let mut details = details.to_string();
        if details.len() > MAX_DETAILS {
            details = serde_json::json!({"truncated": cut(&details, MAX_DETAILS / 2)}).to_string();
        }
        let actor_name = cut(&actor.name, 200);
        let result = sqlx::query(
            "INSERT INTO audit_log (at, actor, tenant, ip, action, outcome, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(self.now_ms())
        .bind(&actor_name)
        .bind(tenant)
        .bind(actor.ip.as_deref())
        .bind(event.action)
        .bind(event.outcome)
        .bind(details)
        .execute(&self.db.pool)
        .await;
        if let Err(e) = result {
            tracing::error!(action = event.action, error = %e, "cannot write the audit log");
        }
    }

    /// Newest first.
    pub async fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, AuthError> {
        // Conditions are fixed text; only values are bound, numbered in order.
        let mut sql = String::from(
            "SELECT id, at, actor, tenant, ip, action, outcome, details FROM audit_log WHERE 1 = 1",
        );
        let mut texts: Vec<&str> = vec![];
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        for (column, value) in [
            ("tenant", &filter.tenant),
            ("actor", &filter.actor),
            ("action", &filter.action),
            ("outcome", &filter.outcome),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                sql.push_str(&format!(" AND {column} = ${}", next()));
                texts.push(v);
            }
        }
        let from_slot = filter.from_ms.map(|_| next());
        let to_slot = filter.to_ms.map(|_| next());
        if let Some(i) = from_slot {
            sql.push_str(&format!(" AND at >= ${i}"));
        }
        if let Some(i) = to_slot {
            sql.push_str(&format!(" AND at < ${i}"));
        }
        let limit = filter.limit.unwrap_or(1000).clamp(1, 100_000);
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for t in texts {
            query = query.bind(t);
        }
        if let Some(v) = filter.from_ms {
            query = query.bind(v);
        }
        if let Some(v) = filter.to_ms {
            query = query.bind(v);
        }
        let rows = query.fetch_all(&self.db.pool).await?;
        rows.iter()
            .map(|r| {
                let details: String = r.try_get("details")?;
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    tenant: r.try_get("tenant")?,
                    ip: r.try_get("ip")?,
                    action: r.try_get("action")?,
                    outcome: r.try_get("outcome")?,
                    details: serde_json::from_str(&details).unwrap_or(Value::String(details)),
                })
            })
            .collect()
    }
}
