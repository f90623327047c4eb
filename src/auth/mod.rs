//! Who may do what: users with argon2id passwords and optional TOTP, their role in each tenant,
//! browser sessions, API keys bound to a tenant and scopes, login lockouts, per-key rate limits
//! and the audit log — all in the central database (sqlx over SQLite or PostgreSQL).
//!
//! The HTTP layer asks two questions of this module: "who is this?" ([`Auth::session`],
//! [`Auth::authenticate_key`]) and "may they?" ([`Principal::allows`]). Nothing here knows
//! about routes or panels.

mod audit;
mod keys;
mod limits;
mod mfa;
mod oidc;
mod oidc_sign_in;
mod sealing;
mod secret;
mod sessions;
mod users;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use audit::{Actor, AuditEntry, AuditEvent, AuditFilter};
pub use keys::{KeyInfo, NewKeyRequest, operator_key};
pub use limits::RateLimited;
pub use mfa::MfaEnrollment;
pub use oidc_sign_in::{OidcCallback, OidcStart};
pub use secret::{MIN_PASSWORD_LEN, random_password, random_token, same as same_secret, totp_code};
pub use sessions::{LoginOutcome, SessionCookie};
pub use users::User;

use crate::clock::SharedClock;
use crate::config::{AuthConfig, ServerConfig};
use crate::db::{Backend, Db, DbError, resolve_url};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("{0}")]
    BadKey(String),
    #[error("wrong email or password")]
    BadCredentials,
    #[error("wrong authentication code")]
    BadMfaCode,
    #[error("too many wrong authentication codes; sign in again")]
    MfaSessionEnded,
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    LockedOut { retry_after_secs: u64 },
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    Forbidden(String),
    /// An OpenID Connect sign-in did not pass a check (state, token, claims, account).
    #[error("{0}")]
    SignInRefused(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Internal(String),
}

/// A user's role in one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            other => Err(AuthError::Invalid(format!(
                "unknown role {other:?} (viewer, editor or admin)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

/// What an API key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Ingest,
    Read,
    /// Acknowledge alerts, silence them, run actions: what editors do besides writing.
    Act,
    /// Manage the tenant's keys and members.
    Admin,
}

impl Scope {
    pub fn parse_list(text: &str) -> Result<Vec<Scope>, AuthError> {
        let mut scopes = vec![];
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            scopes.push(match part {
                "ingest" => Scope::Ingest,
                "read" => Scope::Read,
                "act" => Scope::Act,
                "admin" => Scope::Admin,
                other => {
                    return Err(AuthError::Invalid(format!(
                        "unknown scope {other:?} (ingest, read, act or admin)"
                    )));
                }
            });
        }
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(AuthError::Invalid("at least one scope is needed".into()));
        }
        Ok(scopes)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Act => "act",
            Scope::Admin => "admin",
        }
    }

    pub fn join(scopes: &[Scope]) -> String {
        scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What a route needs within its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Need {
    /// See dashboards, panels, data, exports: any role; keys with `read`.
    Read,
    /// Write rows: editors and admins; keys with `ingest`.
    Ingest,
    /// Act on alerts (acknowledge, silence): editors and admins; keys with `act`.
    Act,
    /// Run panel actions (restart a VM): editors and admins; keys with `act` or `admin`.
    Run,
    /// Manage the tenant's users and keys: tenant admins; keys with `admin`.
    Manage,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub kind: PrincipalKind,
}

#[derive(Debug, Clone)]
pub enum PrincipalKind {
    User {
        id: i64,
        email: String,
        is_admin: bool,
        roles: BTreeMap<String, Role>,
        session: SessionCookie,
    },
    Key {
        id: String,
        tenant: Option<String>,
        scopes: Vec<Scope>,
    },
}

impl Principal {
    /// The name written to the audit log: `user:<email>` or `key:<id>`.
    pub fn actor(&self) -> String {
        match &self.kind {
            PrincipalKind::User { email, .. } => format!("user:{email}"),
            PrincipalKind::Key { id, .. } => format!("key:{id}"),
        }
    }

    pub fn is_global_admin(&self) -> bool {
        match &self.kind {
            PrincipalKind::User { is_admin, .. } => *is_admin,
            PrincipalKind::Key { tenant, scopes, .. } => {
                tenant.is_none() && scopes.contains(&Scope::Admin)
            }
        }
    }

    pub fn allows(&self, tenant: &str, need: Need) -> bool {
        match &self.kind {
            PrincipalKind::User { is_admin: true, .. } => true,
            PrincipalKind::User { roles, .. } => roles.get(tenant).is_some_and(|role| match need {
                Need::Read => true,
                Need::Ingest | Need::Act | Need::Run => *role >= Role::Editor,
                Need::Manage => *role == Role::Admin,
            }),
            PrincipalKind::Key {
                tenant: key_tenant,
                scopes,
                ..
            } => {
                key_tenant.as_deref().is_none_or(|t| t == tenant)
                    && match need {
                        Need::Read => scopes.contains(&Scope::Read),
                        Need::Ingest => scopes.contains(&Scope::Ingest),
                        Need::Act => scopes.contains(&Scope::Act),
                        Need::Run => scopes.contains(&Scope::Act) || scopes.contains(&Scope::Admin),
                        Need::Manage => scopes.contains(&Scope::Admin),
                    }
            }
        }
    }

    /// Tenants this caller may read, out of `all`.
    pub fn readable<'a>(&self, all: &'a [String]) -> Vec<&'a String> {
        all.iter().filter(|t| self.allows(t, Need::Read)).collect()
    }

    pub fn session(&self) -> Option<&SessionCookie> {
        match &self.kind {
            PrincipalKind::User { session, .. } => Some(session),
            PrincipalKind::Key { .. } => None,
        }
    }

    pub fn user_id(&self) -> Option<i64> {
        match &self.kind {
            PrincipalKind::User { id, .. } => Some(*id),
            PrincipalKind::Key { .. } => None,
        }
    }
}

/// The auth service: the database, the clock, the settings and the in-memory rate limiter.
pub struct Auth {
    db: Db,
    clock: SharedClock,
    config: AuthConfig,
    seal: sealing::Keyring,
    limiter: limits::KeyLimiter,
    /// All sign-ins of this process together (`auth.logins_per_second`): password checks cost
    /// CPU by design, so their total rate is bounded before any is made.
    logins: limits::KeyLimiter,
    /// The OpenID providers of `auth.oidc` and their cached discovery documents.
    oidc: oidc::Providers,
}

impl Auth {
    /// Opens the central database `config` names (CLI, tests); the server shares one [`Db`]
    /// through [`Auth::with_db`].
    pub async fn open(config: &ServerConfig, clock: SharedClock) -> Result<Arc<Self>, AuthError> {
        let url = resolve_url(config.database_url.as_deref(), &config.data_dir);
        Self::with_db(Db::connect(&url).await?, config, clock)
    }

    pub fn with_db(
        db: Db,
        config: &ServerConfig,
        clock: SharedClock,
    ) -> Result<Arc<Self>, AuthError> {
        let previous = &config.auth.previous_secret_keys;
        let seal = match &config.auth.secret_key {
            Some(hex) => sealing::Keyring::from_hex(hex, previous)?,
            None => load_or_create_key(&config.data_dir, previous)?,
        };
        Ok(Arc::new(Self {
            db,
            limiter: limits::KeyLimiter::new(
                config.auth.api_rate_per_second,
                config.auth.api_burst,
            ),
            logins: limits::KeyLimiter::new(config.auth.logins_per_second, config.auth.login_burst),
            oidc: oidc::Providers::new(config.auth.oidc.clone())?,
            clock,
            config: config.auth.clone(),
            seal,
        }))
    }

    pub fn backend(&self) -> Backend {
        self.db.backend
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The caller of a long-lived answer (an event stream), asked again: the same principal
    /// with its current roles, or None once its session ended (logout, expiry, disabled user)
    /// or its key was revoked or expired.
    pub async fn recheck(&self, principal: &Principal) -> Result<Option<Principal>, AuthError> {
        match &principal.kind {
            PrincipalKind::User { session, .. } => {
                self.session_by_hash(session.token_hash.clone(), false)
                    .await
            }
            PrincipalKind::Key { id, .. } => self.key_by_id(id).await,
        }
    }

    /// The session cookie's name: `__Host-` prefixed (which browsers only accept with Secure,
    /// Path=/ and no Domain) when served over TLS.
    pub fn cookie_name(&self) -> &'static str {
        if self.config.behind_tls {
            "__Host-opsboard_session"
        } else {
            "opsboard_session"
        }
    }
}

fn load_or_create_key(data_dir: &Path, previous: &[String]) -> Result<sealing::Keyring, AuthError> {
    let path = data_dir.join("secret.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => sealing::Keyring::from_hex(&text, previous),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, hex) = sealing::Keyring::generate();
            std::fs::create_dir_all(data_dir)
                .and_then(|_| write_private(&path, &hex))
                .map_err(|e| {
                    AuthError::Internal(format!("cannot write {}: {e}", path.display()))
                })?;
            Ok(key)
        }
        Err(e) => Err(AuthError::Internal(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(admin: bool, roles: &[(&str, Role)]) -> Principal {
        Principal {
            kind: PrincipalKind::User {
                id: 1,
                email: "a@x".into(),
                is_admin: admin,
                roles: roles.iter().map(|(t, r)| (t.to_string(), *r)).collect(),
                session: SessionCookie::default(),
            },
        }
    }

    fn key(tenant: Option<&str>, scopes: &str) -> Principal {
        Principal {
            kind: PrincipalKind::Key {
                id: "k".into(),
                tenant: tenant.map(String::from),
                scopes: Scope::parse_list(scopes).unwrap(),
            },
        }
    }

    #[test]
    fn roles_grant_in_their_tenant_only() {
        let viewer = user(false, &[("a", Role::Viewer)]);
        assert!(viewer.allows("a", Need::Read));
        assert!(!viewer.allows("a", Need::Ingest));
        assert!(!viewer.allows("a", Need::Act));
        assert!(!viewer.allows("b", Need::Read));
        let editor = user(false, &[("a", Role::Editor)]);
        assert!(editor.allows("a", Need::Act) && !editor.allows("a", Need::Manage));
        assert!(editor.allows("a", Need::Run) && !viewer.allows("a", Need::Run));
        let admin = user(false, &[("a", Role::Admin)]);
        assert!(admin.allows("a", Need::Manage) && !admin.allows("b", Need::Read));
        assert!(!admin.is_global_admin());
        assert!(user(true, &[]).allows("zzz", Need::Manage));
    }

    #[test]
    fn keys_are_bound_to_tenant_and_scopes() {
        let ingest = key(Some("a"), "ingest");
        assert!(ingest.allows("a", Need::Ingest));
        assert!(!ingest.allows("a", Need::Read));
        assert!(!ingest.allows("b", Need::Ingest));
        let read = key(Some("a"), "read");
        assert!(read.allows("a", Need::Read) && !read.allows("a", Need::Manage));
        let global = key(None, "read,admin");
        assert!(global.is_global_admin() && global.allows("b", Need::Manage));
        assert!(!key(Some("a"), "admin").is_global_admin());
        // Acting on alerts is its own scope: an admin key manages keys, an act key silences.
        let admin = key(Some("a"), "admin");
        assert!(admin.allows("a", Need::Manage) && !admin.allows("a", Need::Act));
        let act = key(Some("a"), "act");
        assert!(act.allows("a", Need::Act) && !act.allows("a", Need::Manage));
        // Panel actions take either (issue 16's contract); a read key runs nothing.
        assert!(act.allows("a", Need::Run) && admin.allows("a", Need::Run));
        assert!(!read.allows("a", Need::Run));
        assert!(Scope::parse_list("ingest,nope").is_err());
        assert!(Scope::parse_list("").is_err());
    }
}
