//! Users, their role per tenant, and the tenants table kept in step with the tenants folder.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;
// Only fixed column lists and numbered placeholders are formatted into SQL; values are bound.
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::audit::{Actor, AuditEvent};
use super::{Auth, AuthError, Role, secret};

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub mfa_enabled: bool,
    pub created_at: i64,
}

pub(super) const USER_COLUMNS: &str =
    "id, email, name, is_admin, disabled, mfa_enabled, created_at";

pub(super) fn user_from_row(r: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        is_admin: r.try_get::<i64, _>("is_admin")? != 0,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        mfa_enabled: r.try_get::<i64, _>("mfa_enabled")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

pub fn normalize_email(email: &str) -> Result<String, AuthError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(AuthError::Invalid(format!(
            "{email:?} is not an email address"
        )));
    }
    Ok(email)
}

fn check_tenant_name(tenant: &str) -> Result<(), AuthError> {
    if tenant.is_empty()
        || !tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(AuthError::Invalid(format!(
            "{tenant:?} is not a tenant name"
        )));
    }
    Ok(())
}

impl Auth {
    /// Sets the flag `column` of `user` to `value`, unless that would leave no enabled global
    /// admin: it goes through when `harmless` (SQL over `$1`, the value, and the user's row)
    /// holds or another enabled global admin exists — checked in the same statement.
    async fn unless_last_admin(
        &self,
        user: &User,
        column: &'static str,
        harmless: &'static str,
        value: bool,
    ) -> Result<(), AuthError> {
        // Only these fixed column names and conditions are formatted in; values are bound.
        let changed = sqlx::query(AssertSqlSafe(format!(
            "UPDATE users SET {column} = $1 WHERE id = $2 AND ({harmless} OR EXISTS \
             (SELECT 1 FROM users o WHERE o.is_admin = 1 AND o.disabled = 0 AND o.id <> $2))"
        )))
        .bind(value as i64)
        .bind(user.id)
        .execute(&self.db.pool)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(AuthError::Conflict(format!(
                "{} is the last enabled global admin; make another one first",
                user.email
            )));
        }
        Ok(())
    }

    pub async fn user_count(&self) -> Result<i64, AuthError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.db.pool)
            .await?)
    }

    pub async fn create_user(
        &self,
        actor: &Actor,
        email: &str,
        name: &str,
        password: &str,
        is_admin: bool,
    ) -> Result<User, AuthError> {
        let email = normalize_email(email)?;
        let hash = secret::hash_password_off_thread(password).await?;
        let now = self.now_ms();
        let name = if name.trim().is_empty() {
            email.as_str()
        } else {
            name.trim()
        };
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO users (email, name, password_hash, is_admin, created_at, password_changed_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING RETURNING {USER_COLUMNS}"
        )))
        .bind(&email)
        .bind(name)
        .bind(hash)
        .bind(is_admin as i64)
        .bind(now)
        .bind(now)
        .fetch_optional(&self.db.pool)
        .await?;
        let user = match row {
            Some(row) => user_from_row(&row)?,
            None => return Err(AuthError::Conflict(format!("user {email} already exists"))),
        };
        self.audit(
            actor,
            AuditEvent::ok("user.create", json!({"email": email, "admin": is_admin})),
        )
        .await;
        Ok(user)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<User, AuthError> {
        let email = normalize_email(email)?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
        )))
        .bind(&email)
        .fetch_optional(&self.db.pool)
        .await?;
        match row {
            Some(r) => Ok(user_from_row(&r)?),
            None => Err(AuthError::NotFound(format!("no user {email}"))),
        }
    }

    pub async fn user(&self, id: i64) -> Result<User, AuthError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await?;
        match row {
            Some(r) => Ok(user_from_row(&r)?),
            None => Err(AuthError::NotFound(format!("no user with id {id}"))),
        }
    }

    pub async fn users(&self) -> Result<Vec<User>, AuthError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY email"
        )))
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
    }

    /// Disabling ends every session of the user at once. The last enabled global admin stays
    /// enabled (a global key could otherwise leave nobody who can sign in to administer).
    pub async fn set_disabled(
        &self,
        actor: &Actor,
        id: i64,
        disabled: bool,
    ) -> Result<(), AuthError> {
        let user = self.user(id).await?;
        // Harmless: enabling, or disabling someone who is no admin.
        self.unless_last_admin(&user, "disabled", "$1 = 0 OR is_admin = 0", disabled)
            .await?;
        if disabled {
            self.end_sessions(id).await?;
        }
        let action = if disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        self.audit(actor, AuditEvent::ok(action, json!({"email": user.email})))
            .await;
        Ok(())
    }

    /// Makes the user a global admin, or takes that away. The last enabled global admin keeps
    /// it (in the same statement, so two admins demoting each other cannot both succeed on
    /// SQLite, and cannot leave none on PostgreSQL but by a same-instant race).
    pub async fn set_global_admin(
        &self,
        actor: &Actor,
        id: i64,
        admin: bool,
    ) -> Result<User, AuthError> {
        let user = self.user(id).await?;
        self.unless_last_admin(&user, "is_admin", "$1 = 1", admin)
            .await?;
        self.audit(
            actor,
            AuditEvent::ok("user.admin", json!({"email": user.email, "admin": admin})),
        )
        .await;
        self.user(id).await
    }

    /// Whether `password` is the user's current one (re-authentication before a sensitive change).
    /// The current-password check of `/account`: a guess like any login, so it takes the
    /// account's lockout (429 once locked) and counts against it.
    pub async fn check_password(&self, id: i64, password: &str) -> Result<bool, AuthError> {
        use super::limits::Subject;
        let user = self.user(id).await?;
        self.reserve_attempt(Subject::Account, &user.email).await?;
        let stored: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(id)
            .fetch_one(&self.db.pool)
            .await?;
        let matches = secret::verify_password_off_thread(password, stored).await?;
        if matches {
            self.clear_failures(Subject::Account, &user.email).await?;
        } else {
            self.attempt_failed(Subject::Account, &user.email).await?;
        }
        Ok(matches)
    }

    /// A new password ends every session of the user (the caller logs in again).
    pub async fn set_password(
        &self,
        actor: &Actor,
        id: i64,
        password: &str,
    ) -> Result<(), AuthError> {
        let user = self.user(id).await?;
        let hash = secret::hash_password_off_thread(password).await?;
        sqlx::query("UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(self.now_ms())
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        self.end_sessions(id).await?;
        self.audit(
            actor,
            AuditEvent::ok("user.password", json!({"email": user.email})),
        )
        .await;
        Ok(())
    }

    pub async fn grant(
        &self,
        actor: &Actor,
        user_id: i64,
        tenant: &str,
        role: Role,
    ) -> Result<(), AuthError> {
        check_tenant_name(tenant)?;
        let user = self.user(user_id).await?;
        if !self.tenants(false).await?.iter().any(|t| t == tenant) {
            return Err(AuthError::NotFound(format!("no tenant {tenant}")));
        }
        sqlx::query(
            "INSERT INTO user_tenants (user_id, tenant, role) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, tenant) DO UPDATE SET role = excluded.role",
        )
        .bind(user_id)
        .bind(tenant)
        .bind(role.as_str())
        .execute(&self.db.pool)
        .await?;
        self.audit(
            actor,
            AuditEvent::ok(
                "user.grant",
                json!({"email": user.email, "role": role.as_str()}),
            )
            .in_tenant(tenant),
        )
        .await;
        Ok(())
    }

    pub async fn revoke_membership(
        &self,
        actor: &Actor,
        user_id: i64,
        tenant: &str,
    ) -> Result<(), AuthError> {
        let user = self.user(user_id).await?;
        sqlx::query("DELETE FROM user_tenants WHERE user_id = $1 AND tenant = $2")
            .bind(user_id)
            .bind(tenant)
            .execute(&self.db.pool)
            .await?;
        self.audit(
            actor,
            AuditEvent::ok("user.revoke", json!({"email": user.email})).in_tenant(tenant),
        )
        .await;
        Ok(())
    }

    pub async fn roles(&self, user_id: i64) -> Result<BTreeMap<String, Role>, AuthError> {
        let rows = sqlx::query(
            "SELECT m.tenant, m.role FROM user_tenants m JOIN tenants t ON t.name = m.tenant \
             WHERE m.user_id = $1 AND t.active = 1",
        )
        .bind(user_id)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                Ok((r.try_get("tenant")?, Role::parse(&role)?))
            })
            .collect()
    }

    /// The tenant's members and their roles.
    pub async fn members(&self, tenant: &str) -> Result<Vec<(User, Role)>, AuthError> {
        let rows = sqlx::query(
            "SELECT u.id, u.email, u.name, u.is_admin, u.disabled, u.mfa_enabled, u.created_at, m.role \
             FROM users u JOIN user_tenants m ON m.user_id = u.id WHERE m.tenant = $1 ORDER BY u.email",
        )
        .bind(tenant)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                Ok((user_from_row(r)?, Role::parse(&role)?))
            })
            .collect()
    }

    /// Mirrors the tenants folder: new folders become active tenants, missing ones inactive
    /// (their data and memberships stay; a folder that comes back is active again).
    pub async fn sync_tenants(&self, names: &[String]) -> Result<(), AuthError> {
        let now = self.now_ms();
        let mut tx = self.db.pool.begin().await?;
        for name in names {
            sqlx::query(
                "INSERT INTO tenants (name, active, first_seen, last_seen) VALUES ($1, 1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET active = 1, last_seen = excluded.last_seen",
            )
            .bind(name)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let known: Vec<String> = sqlx::query_scalar("SELECT name FROM tenants WHERE active = 1")
            .fetch_all(&mut *tx)
            .await?;
        for gone in known.iter().filter(|k| !names.contains(k)) {
            sqlx::query("UPDATE tenants SET active = 0 WHERE name = $1")
                .bind(gone)
                .execute(&mut *tx)
                .await?;
            tracing::info!(tenant = %gone, "tenant folder is gone; tenant marked inactive");
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn tenants(&self, active_only: bool) -> Result<Vec<String>, AuthError> {
        let sql = if active_only {
            "SELECT name FROM tenants WHERE active = 1 ORDER BY name"
        } else {
            "SELECT name FROM tenants ORDER BY name"
        };
        Ok(sqlx::query_scalar(sql).fetch_all(&self.db.pool).await?)
    }
}
