//! The second factor: TOTP enrolment and verification with recovery codes, its own lockout
//! counters (per account, per client, per half-signed-in session), and resealing stored TOTP
//! secrets after a key rotation.

use serde_json::json;

use super::audit::{Actor, AuditEvent};
use super::limits::Subject;
use super::{Auth, AuthError, Principal, secret};

pub struct MfaEnrollment {
    pub secret: String,
    pub uri: String,
    /// The otpauth URI as an SVG QR code.
    pub qr_svg: String,
}

impl Auth {
    /// Second step of a login: a TOTP code or an unused recovery code.
    pub async fn verify_mfa(
        &self,
        actor: &Actor,
        principal: &Principal,
        code: &str,
    ) -> Result<String, AuthError> {
        let (Some(user_id), Some(session)) = (principal.user_id(), principal.session()) else {
            return Err(AuthError::Unauthenticated);
        };
        let user = self.user(user_id).await?;
        let ip = actor.ip.clone().unwrap_or_default();
        for (kind, subject) in [(Subject::MfaIp, &ip), (Subject::MfaAccount, &user.email)] {
            if let Some(ms) = self.locked_for(kind, subject).await? {
                self.audit(
                    actor,
                    AuditEvent::denied("mfa.verify", json!({"reason": "locked out"})),
                )
                .await;
                return Err(AuthError::LockedOut {
                    retry_after_secs: (ms as u64).div_ceil(1000),
                });
            }
        }
        let sealed: Option<String> =
            sqlx::query_scalar("SELECT mfa_secret FROM users WHERE id = $1 AND mfa_enabled = 1")
                .bind(user_id)
                .fetch_one(&self.db.pool)
                .await?;
        let Some(sealed) = sealed else {
            return Err(AuthError::Invalid(
                "this account has no authenticator enrolled".into(),
            ));
        };
        let used = if self.claim_totp_code(user_id, &sealed, code).await? {
            "totp"
        } else {
            if !self.claim_recovery_code(user_id, code).await? {
                return Err(self.wrong_code(actor, &user.email, &ip, session).await?);
            }
            "recovery code"
        };
        self.clear_failures(Subject::MfaAccount, &user.email)
            .await?;
        self.clear_failures(Subject::MfaSession, &session.token_hash)
            .await?;
        self.audit(actor, AuditEvent::ok("mfa.verify", json!({"method": used})))
            .await;
        self.upgrade_session(user_id, session, &ip).await
    }

    /// Counts a wrong code against the account, the client and the session; the session ends
    /// at its limit. Returns the error to answer.
    async fn wrong_code(
        &self,
        actor: &Actor,
        email: &str,
        ip: &str,
        session: &super::SessionCookie,
    ) -> Result<AuthError, AuthError> {
        self.record_failure(Subject::MfaIp, ip).await?;
        self.record_failure(Subject::MfaAccount, email).await?;
        self.record_failure(Subject::MfaSession, &session.token_hash)
            .await?;
        self.audit(actor, AuditEvent::failed("mfa.verify", json!({})))
            .await;
        if self
            .locked_for(Subject::MfaSession, &session.token_hash)
            .await?
            .is_some()
        {
            self.end_session(&session.token_hash).await?;
            self.clear_failures(Subject::MfaSession, &session.token_hash)
                .await?;
            return Ok(AuthError::MfaSessionEnded);
        }
        Ok(match self.locked_for(Subject::MfaAccount, email).await? {
            Some(ms) => AuthError::LockedOut {
                retry_after_secs: (ms as u64).div_ceil(1000),
            },
            None => AuthError::BadMfaCode,
        })
    }

    /// Accepts a TOTP code at most once: its time step must be later than the last one this user
    /// signed in with, and claiming the step is one conditional update, so two requests racing
    /// with the same code cannot both win.
    async fn claim_totp_code(
        &self,
        user_id: i64,
        sealed: &str,
        code: &str,
    ) -> Result<bool, AuthError> {
        let Some(step) = secret::totp_step(&self.seal.open(user_id, sealed)?, code, self.now_ms())
        else {
            return Ok(false);
        };
        let claimed = sqlx::query(
            "UPDATE users SET mfa_last_step = $1 \
             WHERE id = $2 AND (mfa_last_step IS NULL OR mfa_last_step < $1)",
        )
        .bind(step)
        .bind(user_id)
        .execute(&self.db.pool)
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Marks an unused recovery code used, whichever key hashed it (or the plain hash codes
    /// had before keyed hashes). One conditional update: a code cannot be used twice.
    async fn claim_recovery_code(&self, user_id: i64, code: &str) -> Result<bool, AuthError> {
        let forms = self.seal.code_hash_candidates(code);
        let list = (0..forms.len())
            .map(|i| format!("${}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        // Only placeholders are spliced in; the values are bound.
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE recovery_codes SET used_at = $1 \
             WHERE user_id = $2 AND used_at IS NULL AND code_hash IN ({list})"
        ));
        let mut query = sqlx::query(sql).bind(self.now_ms()).bind(user_id);
        for form in &forms {
            query = query.bind(form);
        }
        Ok(query.execute(&self.db.pool).await?.rows_affected() > 0)
    }

    /// Reseals every stored TOTP secret that the current key did not seal (made by a previous
    /// key, or by the cipher before the AEAD), so an old key can leave the ring. Runs at start;
    /// returns how many rows changed. A row no key opens is left as it is and named in the log.
    pub async fn reseal_mfa_secrets(&self) -> Result<usize, AuthError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, mfa_secret FROM users WHERE mfa_secret IS NOT NULL")
                .fetch_all(&self.db.pool)
                .await?;
        let mut changed = 0;
        for (user_id, sealed) in rows {
            if self.seal.is_current(&sealed) {
                continue;
            }
            let plain = match self.seal.open(user_id, &sealed) {
                Ok(plain) => plain,
                Err(e) => {
                    tracing::error!(user_id, "cannot reseal the TOTP secret: {e}");
                    continue;
                }
            };
            // Only if the row still holds what was read: a concurrent enrolment wins.
            changed +=
                sqlx::query("UPDATE users SET mfa_secret = $1 WHERE id = $2 AND mfa_secret = $3")
                    .bind(self.seal.seal(user_id, &plain))
                    .bind(user_id)
                    .bind(&sealed)
                    .execute(&self.db.pool)
                    .await?
                    .rows_affected() as usize;
        }
        Ok(changed)
    }

    /// Starts TOTP enrolment: a new secret, kept sealed until a code confirms it.
    pub async fn start_mfa_enrollment(&self, user_id: i64) -> Result<MfaEnrollment, AuthError> {
        let user = self.user(user_id).await?;
        if user.mfa_enabled {
            return Err(AuthError::Conflict(
                "an authenticator is already enrolled".into(),
            ));
        }
        let secret = secret::new_totp_secret();
        sqlx::query("UPDATE users SET mfa_secret = $1 WHERE id = $2 AND mfa_enabled = 0")
            .bind(self.seal.seal(user_id, &secret))
            .bind(user_id)
            .execute(&self.db.pool)
            .await?;
        let uri = secret::otpauth_uri(&secret, &user.email);
        let qr_svg = qrcode::QrCode::new(uri.as_bytes())
            .map_err(|e| AuthError::Internal(format!("QR code: {e}")))?
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .build();
        Ok(MfaEnrollment {
            secret,
            uri,
            qr_svg,
        })
    }

    /// Confirms enrolment with a first code; returns the recovery codes (shown once) and, for a
    /// session that was waiting on enrolment, its replacement token.
    pub async fn confirm_mfa_enrollment(
        &self,
        actor: &Actor,
        principal: &Principal,
        code: &str,
    ) -> Result<(Vec<String>, Option<String>), AuthError> {
        let (Some(user_id), Some(session)) = (principal.user_id(), principal.session()) else {
            return Err(AuthError::Unauthenticated);
        };
        let sealed: Option<String> =
            sqlx::query_scalar("SELECT mfa_secret FROM users WHERE id = $1 AND mfa_enabled = 0")
                .bind(user_id)
                .fetch_optional(&self.db.pool)
                .await?
                .flatten();
        let Some(sealed) = sealed else {
            return Err(AuthError::Invalid("start enrolment first".into()));
        };
        if !self.claim_totp_code(user_id, &sealed, code).await? {
            self.audit(actor, AuditEvent::failed("mfa.enable", json!({})))
                .await;
            return Err(AuthError::BadMfaCode);
        }
        let codes = secret::new_recovery_codes();
        let mut tx = self.db.pool.begin().await?;
        sqlx::query("UPDATE users SET mfa_enabled = 1 WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for c in &codes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id)
                .bind(self.seal.code_hash(c))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.audit(actor, AuditEvent::ok("mfa.enable", json!({})))
            .await;
        let ip = actor.ip.clone().unwrap_or_default();
        let token = match session.mfa_pending {
            true => Some(self.upgrade_session(user_id, session, &ip).await?),
            false => None,
        };
        Ok((codes, token))
    }

    /// Removes a user's authenticator (their own choice, or an admin's after a lost phone).
    pub async fn reset_mfa(&self, actor: &Actor, user_id: i64) -> Result<(), AuthError> {
        let user = self.user(user_id).await?;
        sqlx::query("UPDATE users SET mfa_enabled = 0, mfa_secret = NULL, mfa_last_step = NULL WHERE id = $1")
            .bind(user_id)
            .execute(&self.db.pool)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.db.pool)
            .await?;
        self.audit(
            actor,
            AuditEvent::ok("mfa.disable", json!({"email": user.email})),
        )
        .await;
        Ok(())
    }
}
