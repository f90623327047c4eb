//! Browser sessions: login with lockouts, the session behind a cookie (idle and absolute
//! expiry), logout. The second factor: `mfa.rs`.
//!
//! Tokens are 256 random bits; only their SHA-256 is stored. Every login and every completed
//! MFA step issues a new token, so a token seen before login is worth nothing after it.

use serde_json::json;
use sqlx::Row;

use super::audit::{Actor, AuditEvent};
use super::limits::{Subject, account_from};
use super::users::normalize_email;
use super::{Auth, AuthError, Principal, PrincipalKind, secret};

/// The session a cookie stands for: its stored hash, its CSRF token and whether the second
/// factor is still outstanding.
#[derive(Debug, Clone, Default)]
pub struct SessionCookie {
    pub token_hash: String,
    pub csrf: String,
    pub mfa_pending: bool,
}

/// Where a successful password check leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    SignedIn,
    /// The account has TOTP: ask for a code (or a recovery code).
    NeedsCode,
    /// Admins must use TOTP and this one has none yet: enrol first.
    NeedsEnrollment,
}

/// Sessions are touched at most this often, so reading a page is not a database write.
const TOUCH_EVERY_MS: i64 = 60_000;

impl Auth {
    /// Deletes sessions past their idle or absolute timeout (a session nobody uses again is
    /// never checked, so never ended) and login counters that no longer matter: past their
    /// window, or past their lockout by more than the longest lockout. Returns how many of
    /// each went.
    pub async fn prune_expired(&self) -> Result<(u64, u64), AuthError> {
        let now = self.now_ms();
        let idle = self.config.session_idle_timeout.0.as_millis() as i64;
        let absolute = self.config.session_absolute_timeout.0.as_millis() as i64;
        let sessions = sqlx::query("DELETE FROM sessions WHERE last_seen < $1 OR created_at < $2")
            .bind(now - idle)
            .bind(now - absolute)
            .execute(&self.db.pool)
            .await?
            .rows_affected();
        let window = self.config.failure_window.0.as_millis() as i64;
        let longest = self.config.max_lockout.0.as_millis() as i64;
        let attempts =
            sqlx::query("DELETE FROM login_attempts WHERE locked_until < $1 AND window_start < $2")
                .bind(now - longest)
                .bind(now - window)
                .execute(&self.db.pool)
                .await?
                .rows_affected();
        Ok((sessions, attempts))
    }

    /// Checks a password and opens a session; returns the new token and what is still needed.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        ip: &str,
    ) -> Result<(String, LoginOutcome), AuthError> {
        let actor = Actor::new(
            format!("user:{}", email.trim().to_lowercase()),
            Some(ip.to_string()),
        );
        if !self.config.local_passwords {
            return Err(AuthError::Forbidden(
                "sign-in with a password is turned off here; use a sign-in provider".into(),
            ));
        }
        let email = match normalize_email(email) {
            Ok(e) => e,
            Err(_) => return Err(AuthError::BadCredentials),
        };
        let pair = account_from(&email, ip);
        if let Err((e, reason)) = self.admit_login(ip, &pair).await {
            self.audit(
                &actor,
                AuditEvent::denied("login", json!({ "reason": reason })),
            )
            .await;
            return Err(e);
        }
        let row = sqlx::query(
            "SELECT id, password_hash, disabled, is_admin, mfa_enabled FROM users WHERE email = $1",
        )
        .bind(&email)
        .fetch_optional(&self.db.pool)
        .await?;
        let stored = match &row {
            Some(r) => r.try_get::<String, _>("password_hash")?,
            None => secret::dummy_hash().to_string(),
        };
        let matches = secret::verify_password_off_thread(password, stored).await?;
        let (user_id, disabled, is_admin, mfa_enabled) = match &row {
            Some(r) => (
                r.try_get::<i64, _>("id")?,
                r.try_get::<i64, _>("disabled")? != 0,
                r.try_get::<i64, _>("is_admin")? != 0,
                r.try_get::<i64, _>("mfa_enabled")? != 0,
            ),
            None => (0, false, false, false),
        };
        if !matches || row.is_none() || disabled {
            self.attempt_failed(Subject::Ip, ip).await?;
            self.attempt_failed(Subject::Account, &pair).await?;
            let reason = if disabled && matches {
                "account disabled"
            } else {
                "wrong email or password"
            };
            self.audit(
                &actor,
                AuditEvent::failed("login", json!({"reason": reason})),
            )
            .await;
            return Err(AuthError::BadCredentials);
        }
        self.clear_failures(Subject::Account, &pair).await?;
        self.release_attempt(Subject::Ip, ip).await?;
        let outcome = if mfa_enabled {
            LoginOutcome::NeedsCode
        } else if is_admin && self.config.require_mfa_for_admins {
            LoginOutcome::NeedsEnrollment
        } else {
            LoginOutcome::SignedIn
        };
        let token = self
            .open_session(user_id, outcome != LoginOutcome::SignedIn, ip)
            .await?;
        let step = match outcome {
            LoginOutcome::SignedIn => "complete",
            LoginOutcome::NeedsCode => "mfa code needed",
            LoginOutcome::NeedsEnrollment => "mfa enrolment needed",
        };
        self.audit(&actor, AuditEvent::ok("login", json!({"step": step})))
            .await;
        Ok((token, outcome))
    }

    /// Takes the sign-in rate's token and both counters before the password is checked:
    /// parallel attempts cannot all slip under the limit while argon2 runs. On refusal, the
    /// error and the reason for the audit log.
    async fn admit_login(&self, ip: &str, pair: &str) -> Result<(), (AuthError, &'static str)> {
        self.take_login_token().map_err(|e| (e, "sign-in rate"))?;
        let mut reserved = vec![];
        for (kind, subject) in [(Subject::Ip, ip), (Subject::Account, pair)] {
            if let Err(e) = self.reserve_attempt(kind, subject).await {
                for (kind, subject) in reserved {
                    self.release_attempt(kind, subject)
                        .await
                        .map_err(|e| (e, "counter"))?;
                }
                return Err((e, "locked out"));
            }
            reserved.push((kind, subject));
        }
        Ok(())
    }

    pub(super) async fn open_session(
        &self,
        user_id: i64,
        mfa_pending: bool,
        ip: &str,
    ) -> Result<String, AuthError> {
        let token = secret::random_token();
        let now = self.now_ms();
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, mfa_pending, created_at, last_seen, ip) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(secret::token_hash(&token))
        .bind(user_id)
        .bind(secret::random_token())
        .bind(mfa_pending as i64)
        .bind(now)
        .bind(now)
        .bind(ip)
        .execute(&self.db.pool)
        .await?;
        Ok(token)
    }

    /// The caller behind a session token, if the session is alive.
    pub async fn session(&self, token: &str) -> Result<Option<Principal>, AuthError> {
        self.session_by_hash(secret::token_hash(token), true).await
    }

    /// The session behind a stored token hash, if it is still alive; `touch` counts this as
    /// activity (a request does; a stream's periodic re-check does not).
    pub(super) async fn session_by_hash(
        &self,
        hash: String,
        touch: bool,
    ) -> Result<Option<Principal>, AuthError> {
        let row = sqlx::query(
            "SELECT s.user_id, s.csrf_token, s.mfa_pending, s.created_at, s.last_seen, \
             u.email, u.is_admin, u.disabled FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&self.db.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let now = self.now_ms();
        let created: i64 = r.try_get("created_at")?;
        let last_seen: i64 = r.try_get("last_seen")?;
        let idle = self.config.session_idle_timeout.0.as_millis() as i64;
        let absolute = self.config.session_absolute_timeout.0.as_millis() as i64;
        if r.try_get::<i64, _>("disabled")? != 0
            || now - last_seen > idle
            || now - created > absolute
        {
            self.end_session(&hash).await?;
            return Ok(None);
        }
        if touch && now - last_seen > TOUCH_EVERY_MS {
            sqlx::query("UPDATE sessions SET last_seen = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(&hash)
                .execute(&self.db.pool)
                .await?;
        }
        let id: i64 = r.try_get("user_id")?;
        Ok(Some(Principal {
            kind: PrincipalKind::User {
                id,
                email: r.try_get("email")?,
                is_admin: r.try_get::<i64, _>("is_admin")? != 0,
                roles: self.roles(id).await?,
                session: super::SessionCookie {
                    token_hash: hash,
                    csrf: r.try_get("csrf_token")?,
                    mfa_pending: r.try_get::<i64, _>("mfa_pending")? != 0,
                },
            },
        }))
    }

    pub(super) async fn end_session(&self, token_hash: &str) -> Result<(), AuthError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn logout(
        &self,
        actor: &Actor,
        session: &super::SessionCookie,
    ) -> Result<(), AuthError> {
        self.end_session(&session.token_hash).await?;
        self.audit(actor, AuditEvent::ok("logout", json!({}))).await;
        Ok(())
    }

    pub(super) async fn end_sessions(&self, user_id: i64) -> Result<(), AuthError> {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Replaces a session whose second factor was just satisfied with a fresh, complete one.
    pub(super) async fn upgrade_session(
        &self,
        user_id: i64,
        old: &super::SessionCookie,
        ip: &str,
    ) -> Result<String, AuthError> {
        self.end_session(&old.token_hash).await?;
        self.open_session(user_id, false, ip).await
    }
}
