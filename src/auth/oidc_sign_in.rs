//! OpenID Connect, the opsboard side: a sign-in under way is kept in the database (state
//! hashed, nonce and PKCE verifier sealed, one use, 10 minutes) so the callback may land on
//! another node; a verified identity is found by (issuer, subject), linked to the user with
//! its email, or creates one; the provider's groups set the user's roles in the tenants its
//! mapping names (and global admin) at every sign-in; the session remembers the provider for
//! RP-initiated logout. Every refusal is audited with its reason.

use std::collections::BTreeMap;

use serde_json::json;
use sqlx::Row;

use super::audit::{Actor, AuditEvent};
use super::oidc::{VerifiedIdentity, groups};
use super::users::normalize_email;
use super::{Auth, AuthError, Role, SessionCookie, User, secret};
use crate::config::OidcProvider;

/// How long a started sign-in may take at the provider.
const PENDING_FOR_MS: i64 = 10 * 60 * 1000;

/// A started sign-in: where to send the browser, and the state to bind to it (a cookie).
#[derive(Debug)]
pub struct OidcStart {
    pub url: String,
    pub state: String,
}

/// Sealed with the pending login (the seal's associated id; no user exists yet).
const PENDING_SEAL_ID: i64 = 0;

impl Auth {
    pub fn oidc_providers(&self) -> &[OidcProvider] {
        self.oidc.list()
    }

    /// The configured provider called `name`.
    pub fn oidc_provider(&self, name: &str) -> Result<&OidcProvider, AuthError> {
        self.oidc
            .get(name)
            .ok_or_else(|| AuthError::NotFound(format!("no sign-in provider {name:?}")))
    }

    /// Starts a sign-in through `provider`, to land on `next` afterwards.
    pub async fn oidc_start(
        &self,
        provider: &str,
        redirect_url: &str,
        next: &str,
    ) -> Result<OidcStart, AuthError> {
        let provider = self.oidc_provider(provider)?;
        self.take_login_token()?;
        let started = self.oidc.start(provider, redirect_url).await?;
        let now = self.now_ms();
        sqlx::query("DELETE FROM oidc_logins WHERE created_at < $1")
            .bind(now - PENDING_FOR_MS)
            .execute(&self.db.pool)
            .await?;
        let secrets = json!({"nonce": started.nonce, "pkce": started.pkce_verifier}).to_string();
        sqlx::query(
            "INSERT INTO oidc_logins (state_hash, provider, sealed, next, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(secret::token_hash(&started.state))
        .bind(&provider.name)
        .bind(self.seal.seal(PENDING_SEAL_ID, &secrets))
        .bind(next)
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        Ok(OidcStart {
            url: started.url,
            state: started.state,
        })
    }

    /// Completes a sign-in the provider sent back: the state must be one this server started
    /// (not used, not expired, for this provider) and the one this browser holds; then the
    /// code is traded and the ID token verified. Returns the session token and where to land.
    pub async fn oidc_finish(
        &self,
        provider: &str,
        redirect_url: &str,
        callback: &OidcCallback<'_>,
        ip: &str,
    ) -> Result<(String, String), AuthError> {
        // Callbacks share the sign-in rate with password checks: each refusal is an audit
        // entry, and a flood of made-up callbacks must not become a flood of writes.
        self.take_login_token()?;
        let actor = Actor::new(format!("oidc:{provider}"), Some(ip.to_string()));
        match self
            .oidc_finish_checked(provider, redirect_url, callback, ip)
            .await
        {
            Ok(done) => Ok(done),
            Err(e) => {
                let reason = e.to_string();
                self.audit(
                    &actor,
                    AuditEvent::failed("login", json!({"provider": provider, "reason": reason})),
                )
                .await;
                Err(e)
            }
        }
    }

    async fn oidc_finish_checked(
        &self,
        name: &str,
        redirect_url: &str,
        callback: &OidcCallback<'_>,
        ip: &str,
    ) -> Result<(String, String), AuthError> {
        let provider = self.oidc_provider(name)?;
        let refused =
            |m: &str| AuthError::SignInRefused(format!("sign-in through {name} failed: {m}"));
        if let Some(error) = callback.error {
            return Err(refused(&format!("the provider answered {error:?}")));
        }
        // Taken out first, so a state works once even when two callbacks race.
        let row = sqlx::query(
            "DELETE FROM oidc_logins WHERE state_hash = $1 RETURNING provider, sealed, next, created_at",
        )
        .bind(secret::token_hash(callback.state))
        .fetch_optional(&self.db.pool)
        .await?;
        let Some(row) = row else {
            return Err(refused(
                "this sign-in is unknown or was already used; start again",
            ));
        };
        let browser_matches = callback
            .browser_state
            .is_some_and(|held| secret::same(held, callback.state));
        if !browser_matches {
            return Err(refused(
                "the sign-in was started in another browser; start again",
            ));
        }
        if row.try_get::<String, _>("provider")? != name {
            return Err(refused("the sign-in was started for another provider"));
        }
        if self.now_ms() - row.try_get::<i64, _>("created_at")? > PENDING_FOR_MS {
            return Err(refused(
                "the sign-in took longer than 10 minutes; start again",
            ));
        }
        let sealed: String = row.try_get("sealed")?;
        let secrets: serde_json::Value = self
            .seal
            .open(PENDING_SEAL_ID, &sealed)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .ok_or_else(|| refused("the pending sign-in cannot be opened; start again"))?;
        let text = |k: &str| secrets.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let identity = self
            .oidc
            .finish(
                provider,
                redirect_url,
                callback.code,
                text("nonce"),
                text("pkce"),
            )
            .await?;
        let user = self.oidc_user(provider, &identity, ip).await?;
        let token = self.open_session(user.id, false, ip).await?;
        sqlx::query("UPDATE sessions SET oidc_provider = $1 WHERE token_hash = $2")
            .bind(name)
            .bind(secret::token_hash(&token))
            .execute(&self.db.pool)
            .await?;
        let actor = Actor::new(format!("user:{}", user.email), Some(ip.to_string()));
        self.audit(
            &actor,
            AuditEvent::ok("login", json!({"step": "complete", "provider": name})),
        )
        .await;
        Ok((token, row.try_get("next")?))
    }

    /// The opsboard user behind a verified identity, found, linked or created, with the
    /// provider's groups applied to its roles.
    async fn oidc_user(
        &self,
        provider: &OidcProvider,
        identity: &VerifiedIdentity,
        ip: &str,
    ) -> Result<User, AuthError> {
        let name = &provider.name;
        let refused =
            |m: String| AuthError::SignInRefused(format!("sign-in through {name} failed: {m}"));
        let claims = &identity.claims;
        let (email, verified) = checked_email(provider, claims).map_err(refused)?;
        let actor = Actor::new(format!("oidc:{name}"), Some(ip.to_string()));
        let user = match self.identity_user(identity).await? {
            Some(id) => self.user(id).await?,
            None => {
                let user = match self.user_by_email(&email).await {
                    // Linking hands over an account that may hold roles granted by hand: the
                    // provider must say the email is verified, not merely not say otherwise.
                    Ok(_) if provider.require_verified_email && verified != Some(true) => {
                        return Err(refused(format!(
                            "the provider does not say {email} is verified, so it is not linked \
                             to the existing account"
                        )));
                    }
                    Ok(user) => user,
                    Err(AuthError::NotFound(_)) if provider.auto_create_users => {
                        self.create_oidc_user(&actor, &email, claims).await?
                    }
                    Err(AuthError::NotFound(_)) => {
                        return Err(refused(format!(
                            "{email} has no opsboard account; an admin must create it first"
                        )));
                    }
                    Err(e) => return Err(e),
                };
                self.link_identity(&actor, provider, identity, &user)
                    .await?;
                user
            }
        };
        if user.disabled {
            return Err(refused(format!("the account {} is disabled", user.email)));
        }
        sqlx::query(
            "UPDATE user_identities SET last_login_at = $1 WHERE issuer = $2 AND subject = $3",
        )
        .bind(self.now_ms())
        .bind(&identity.issuer)
        .bind(&identity.subject)
        .execute(&self.db.pool)
        .await?;
        self.apply_groups(&actor, provider, &user, claims).await?;
        self.user(user.id).await
    }

    async fn identity_user(&self, identity: &VerifiedIdentity) -> Result<Option<i64>, AuthError> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM user_identities WHERE issuer = $1 AND subject = $2",
        )
        .bind(&identity.issuer)
        .bind(&identity.subject)
        .fetch_optional(&self.db.pool)
        .await?)
    }

    /// A user for a first sign-in; its password is random and never shown (sign-in is the
    /// provider's). Two first sign-ins at once: the second finds the first's user.
    async fn create_oidc_user(
        &self,
        actor: &Actor,
        email: &str,
        claims: &serde_json::Value,
    ) -> Result<User, AuthError> {
        let display = claims.get("name").and_then(|v| v.as_str()).unwrap_or("");
        match self
            .create_user(actor, email, display, &secret::random_password(), false)
            .await
        {
            Err(AuthError::Conflict(_)) => self.user_by_email(email).await,
            other => other,
        }
    }

    async fn link_identity(
        &self,
        actor: &Actor,
        provider: &OidcProvider,
        identity: &VerifiedIdentity,
        user: &User,
    ) -> Result<(), AuthError> {
        let now = self.now_ms();
        sqlx::query(
            "INSERT INTO user_identities (issuer, subject, user_id, provider, created_at, last_login_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (issuer, subject) DO NOTHING",
        )
        .bind(&identity.issuer)
        .bind(&identity.subject)
        .bind(user.id)
        .bind(&provider.name)
        .bind(now)
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        self.audit(
            actor,
            AuditEvent::ok(
                "user.link",
                json!({"email": user.email, "provider": provider.name, "subject": identity.subject}),
            ),
        )
        .await;
        Ok(())
    }

    /// Sets the user's role in every tenant the provider's mapping names (the highest role its
    /// groups give; none removes the membership) and global admin when `admin_groups` is set.
    /// Changes are audited as the provider's.
    async fn apply_groups(
        &self,
        actor: &Actor,
        provider: &OidcProvider,
        user: &User,
        claims: &serde_json::Value,
    ) -> Result<(), AuthError> {
        let Some(claim) = provider.groups_claim.as_deref() else {
            return Ok(());
        };
        let held = groups(claims, claim);
        let current = self.roles(user.id).await?;
        for (tenant, wanted) in mapped_roles(provider, &held) {
            let outcome = match (current.get(&tenant), wanted) {
                (Some(have), Some(want)) if *have == want => Ok(()),
                (_, Some(want)) => self.grant(actor, user.id, &tenant, want).await,
                (Some(_), None) => self.revoke_membership(actor, user.id, &tenant).await,
                (None, None) => Ok(()),
            };
            if let Err(e) = outcome {
                tracing::warn!(provider = %provider.name, %tenant, error = %e, "role from the provider's groups not applied");
            }
        }
        if !provider.admin_groups.is_empty() {
            let admin = provider.admin_groups.iter().any(|g| held.contains(g));
            if admin != user.is_admin {
                match self.set_global_admin(actor, user.id, admin).await {
                    Err(AuthError::Conflict(reason)) => {
                        tracing::warn!(provider = %provider.name, %reason, "global admin kept");
                    }
                    other => {
                        other?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Where to send the browser after signing out of a session that came through a provider
    /// offering RP-initiated logout; `after` is where the provider should send it back.
    pub async fn oidc_logout_url(&self, session: &SessionCookie, after: &str) -> Option<String> {
        let name: Option<String> =
            sqlx::query_scalar("SELECT oidc_provider FROM sessions WHERE token_hash = $1")
                .bind(&session.token_hash)
                .fetch_optional(&self.db.pool)
                .await
                .ok()
                .flatten();
        let provider = self.oidc.get(name.as_deref()?)?;
        self.oidc.logout_url(provider, after).await
    }
}

/// What the provider's redirect brought back, and the state this browser was given.
#[derive(Debug, Default)]
pub struct OidcCallback<'a> {
    pub state: &'a str,
    pub code: &'a str,
    /// The provider's `error` (the user declined, …), when it sent one instead of a code.
    pub error: Option<&'a str>,
    pub browser_state: Option<&'a str>,
}

/// The user's email from the provider's claims and whether the provider says it is verified,
/// or why the sign-in is refused (no email, not verified, a domain not allowed).
fn checked_email(
    provider: &OidcProvider,
    claims: &serde_json::Value,
) -> Result<(String, Option<bool>), String> {
    let email = claims
        .get(&provider.email_claim)
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("the token has no {} claim", provider.email_claim))?;
    let email = normalize_email(email).map_err(|e| e.to_string())?;
    let verified = claims.get("email_verified").and_then(|v| v.as_bool());
    if provider.require_verified_email && verified == Some(false) {
        return Err(format!("the provider has not verified {email}"));
    }
    let domain = email.rsplit('@').next().unwrap_or_default();
    let allowed = provider.allowed_domains.is_empty()
        || provider
            .allowed_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain));
    if !allowed {
        return Err(format!("{domain} is not an allowed domain"));
    }
    Ok((email, verified))
}

/// For each tenant the provider's mapping names: the highest role the groups give, or None.
fn mapped_roles(provider: &OidcProvider, held: &[String]) -> BTreeMap<String, Option<Role>> {
    let mut out: BTreeMap<String, Option<Role>> = BTreeMap::new();
    for rule in &provider.roles {
        let entry = out.entry(rule.tenant.clone()).or_default();
        if held.contains(&rule.group)
            && let Ok(role) = Role::parse(&rule.role)
        {
            *entry = (*entry).max(Some(role));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_matching_role_wins_and_unmatched_tenants_lose_theirs() {
        let provider: OidcProvider = serde_yaml::from_str(
            "name: kc\nissuer: https://kc.example\nclient_id: c\ngroups_claim: groups\nroles:\n\
             - {group: ops, tenant: acme, role: viewer}\n\
             - {group: ops-leads, tenant: acme, role: admin}\n\
             - {group: dev, tenant: acme, role: editor}\n\
             - {group: globex-team, tenant: globex, role: editor}\n",
        )
        .unwrap();
        let held = vec!["ops".to_string(), "dev".to_string()];
        let roles = mapped_roles(&provider, &held);
        assert_eq!(roles["acme"], Some(Role::Editor));
        assert_eq!(roles["globex"], None, "named but not held: removed");
        assert_eq!(
            roles.len(),
            2,
            "tenants the mapping does not name are left alone"
        );
        let roles = mapped_roles(&provider, &["ops-leads".to_string()]);
        assert_eq!(roles["acme"], Some(Role::Admin));
    }
}
