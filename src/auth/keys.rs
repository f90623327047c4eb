//! API keys: `opsb_<id>_<secret>` with a checksum, stored as a SHA-256, bound to one tenant (or
//! to none, for admins' global keys) and to scopes; expiry, last use, revoke and rotate.

use serde::Serialize;
use serde_json::json;
// Only fixed column lists and numbered placeholders are formatted into SQL; values are bound.
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::audit::{Actor, AuditEvent};
use super::{Auth, AuthError, Principal, PrincipalKind, Scope, secret};

#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub tenant: Option<String>,
    pub scopes: Vec<Scope>,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl KeyInfo {
    /// `revoked`, `expired` (at `now_ms`) or `active`.
    pub fn status(&self, now_ms: i64) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at.is_some_and(|e| e <= now_ms) {
            "expired"
        } else {
            "active"
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewKeyRequest {
    pub name: String,
    /// None = a global key (admins only).
    pub tenant: Option<String>,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<i64>,
}

const KEY_COLUMNS: &str = "id, name, tenant, scopes, secret_hash, created_by, created_at, expires_at, last_used_at, revoked_at";

fn key_from_row(r: &AnyRow) -> Result<KeyInfo, AuthError> {
    let scopes: String = r.try_get("scopes")?;
    Ok(KeyInfo {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        tenant: r.try_get("tenant")?,
        scopes: Scope::parse_list(&scopes)?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

/// Key use is recorded at most this often (a busy agent is not a write per request).
const LAST_USED_EVERY_MS: i64 = 60_000;

/// A global key with every scope in the database `config` names, as `opsboard apikey create
/// --global --scope ingest,read,admin` makes one: for benchmarks and test harnesses that drive a
/// server they start themselves.
pub async fn operator_key(
    config: &crate::config::ServerConfig,
    name: &str,
) -> Result<String, AuthError> {
    let auth = Auth::open(config, crate::clock::system()).await?;
    let request = NewKeyRequest {
        name: name.to_string(),
        tenant: None,
        scopes: vec![Scope::Ingest, Scope::Read, Scope::Act, Scope::Admin],
        expires_at: None,
    };
    let (_, key) = auth
        .create_key(&super::Actor::new(name.to_string(), None), request)
        .await?;
    Ok(key)
}

impl Auth {
    /// Creates a key and returns it with the only copy of its secret.
    pub async fn create_key(
        &self,
        actor: &Actor,
        request: NewKeyRequest,
    ) -> Result<(KeyInfo, String), AuthError> {
        if let Some(t) = &request.tenant
            && !self.tenants(true).await?.contains(t)
        {
            return Err(AuthError::NotFound(format!("no active tenant {t}")));
        }
        if request.scopes.is_empty() {
            return Err(AuthError::Invalid("at least one scope is needed".into()));
        }
        let new = secret::new_api_key();
        let name = if request.name.trim().is_empty() {
            new.id.clone()
        } else {
            request.name.trim().to_string()
        };
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO api_keys (id, name, tenant, scopes, secret_hash, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {KEY_COLUMNS}"
        )))
        .bind(&new.id)
        .bind(&name)
        .bind(request.tenant.as_deref())
        .bind(Scope::join(&request.scopes))
        .bind(secret::token_hash(&new.key))
        .bind(&actor.name)
        .bind(self.now_ms())
        .bind(request.expires_at)
        .fetch_one(&self.db.pool)
        .await?;
        let info = key_from_row(&row)?;
        let mut event = AuditEvent::ok(
            "apikey.create",
            json!({"key_id": info.id, "name": info.name, "scopes": Scope::join(&info.scopes), "expires_at": info.expires_at}),
        );
        event.tenant = info.tenant.clone();
        self.audit(actor, event).await;
        Ok((info, new.key))
    }

    pub async fn key(&self, id: &str) -> Result<KeyInfo, AuthError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await?;
        match row {
            Some(r) => key_from_row(&r),
            None => Err(AuthError::NotFound(format!("no API key {id}"))),
        }
    }

    /// Keys of one tenant, or every key when `tenant` is None.
    pub async fn keys(&self, tenant: Option<&str>) -> Result<Vec<KeyInfo>, AuthError> {
        let rows =
            match tenant {
                Some(t) => sqlx::query(AssertSqlSafe(format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant = $1 ORDER BY created_at, id"
                )))
                .bind(t)
                .fetch_all(&self.db.pool)
                .await?,
                None => {
                    sqlx::query(AssertSqlSafe(format!(
                        "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
                    )))
                    .fetch_all(&self.db.pool)
                    .await?
                }
            };
        rows.iter().map(key_from_row).collect()
    }

    /// Revoked keys fail from the very next request: keys are looked up on every request.
    pub async fn revoke_key(&self, actor: &Actor, id: &str) -> Result<KeyInfo, AuthError> {
        let key = self.key(id).await?;
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(self.now_ms())
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        let mut event = AuditEvent::ok("apikey.revoke", json!({"key_id": id, "name": key.name}));
        event.tenant = key.tenant.clone();
        self.audit(actor, event).await;
        Ok(key)
    }

    /// A new key with the same name, tenant, scopes and lifetime; the old one is revoked.
    pub async fn rotate_key(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<(KeyInfo, String), AuthError> {
        let old = self.key(id).await?;
        if old.revoked_at.is_some() {
            return Err(AuthError::Conflict(format!("API key {id} is revoked")));
        }
        let expires_at = old.expires_at.map(|e| self.now_ms() + (e - old.created_at));
        let created = self
            .create_key(
                actor,
                NewKeyRequest {
                    name: old.name.clone(),
                    tenant: old.tenant.clone(),
                    scopes: old.scopes.clone(),
                    expires_at,
                },
            )
            .await?;
        self.revoke_key(actor, id).await?;
        Ok(created)
    }

    /// The caller behind a bearer key. Malformed keys fail before any lookup.
    pub async fn authenticate_key(&self, key: &str) -> Result<Principal, AuthError> {
        let id = secret::parse_api_key(key)?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await?;
        let invalid = || AuthError::BadKey("unknown, revoked or expired API key".into());
        let Some(row) = row else {
            return Err(invalid());
        };
        let stored: String = row.try_get("secret_hash")?;
        if !secret::same(&stored, &secret::token_hash(key)) {
            return Err(invalid());
        }
        self.usable_key(key_from_row(&row)?, true).await
    }

    /// A key already authenticated once, looked up again by id: still the caller while it is
    /// neither revoked nor expired (and its tenant still exists).
    pub(super) async fn key_by_id(&self, id: &str) -> Result<Option<Principal>, AuthError> {
        let info = match self.key(id).await {
            Ok(info) => info,
            Err(AuthError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        match self.usable_key(info, false).await {
            Ok(p) => Ok(Some(p)),
            Err(AuthError::BadKey(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn usable_key(&self, info: KeyInfo, touch: bool) -> Result<Principal, AuthError> {
        let invalid = || AuthError::BadKey("unknown, revoked or expired API key".into());
        let id = info.id.as_str();
        let now = self.now_ms();
        if info.revoked_at.is_some() || info.expires_at.is_some_and(|e| e <= now) {
            return Err(invalid());
        }
        if let Some(t) = &info.tenant
            && !self.tenants(true).await?.contains(t)
        {
            return Err(invalid());
        }
        if touch
            && info
                .last_used_at
                .is_none_or(|at| now - at > LAST_USED_EVERY_MS)
        {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&self.db.pool)
                .await?;
        }
        Ok(Principal {
            kind: PrincipalKind::Key {
                id: info.id,
                tenant: info.tenant,
                scopes: info.scopes,
            },
        })
    }
}
