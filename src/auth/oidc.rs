//! OpenID Connect, the protocol side, all through the `openidconnect` crate: discovery (cached
//! for an hour, fetched again when a token is signed by a key the cached JWKS lacks — the
//! provider rotated its keys), the authorization URL with PKCE, `state` and `nonce`, and the
//! code exchange whose ID token is verified (signature against the provider's JWKS, issuer,
//! audience, expiry and issue time within a clock skew of two minutes, nonce). What a verified sign-in means for
//! users and roles is `oidc_sign_in.rs`.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, IdToken, IssuerUrl, LogoutRequest, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, Scope,
    SignatureVerificationError, TokenResponse,
};

use super::AuthError;
use crate::config::OidcProvider;

/// How long discovery and the JWKS are trusted before being fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// Every claim of an ID token besides the standard ones (groups, roles, custom emails).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(transparent)]
struct OtherClaims(serde_json::Map<String, serde_json::Value>);

impl AdditionalClaims for OtherClaims {}

type FullIdToken = IdToken<
    OtherClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// A sign-in handed to the provider: where to send the browser, and the secrets to keep until
/// it comes back.
#[derive(Debug)]
pub struct Started {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Who the provider says signed in, after every check passed.
#[derive(Debug, Clone)]
pub struct VerifiedIdentity {
    pub issuer: String,
    pub subject: String,
    /// All the token's claims as JSON, for the email and groups claims.
    pub claims: serde_json::Value,
}

/// The configured providers and what their discovery documents said.
pub struct Providers {
    list: Vec<OidcProvider>,
    http: openidconnect::reqwest::Client,
    metadata: tokio::sync::Mutex<HashMap<String, (Instant, Arc<ProviderMetadataWithLogout>)>>,
}

fn refused(provider: &str, message: impl std::fmt::Display) -> AuthError {
    AuthError::SignInRefused(format!("sign-in through {provider} failed: {message}"))
}

impl Providers {
    pub fn new(list: Vec<OidcProvider>) -> Result<Self, AuthError> {
        let http = openidconnect::reqwest::ClientBuilder::new()
            // Following redirects would let a provider's answer point requests anywhere.
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| AuthError::Internal(format!("OIDC HTTP client: {e}")))?;
        Ok(Self {
            list,
            http,
            metadata: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    pub fn list(&self) -> &[OidcProvider] {
        &self.list
    }

    pub fn get(&self, name: &str) -> Option<&OidcProvider> {
        self.list.iter().find(|p| p.name == name)
    }

    /// The provider's discovery document and keys, fetched when missing, older than an hour,
    /// or when `fresh` (a token named a key they lack).
    async fn metadata(
        &self,
        provider: &OidcProvider,
        fresh: bool,
    ) -> Result<Arc<ProviderMetadataWithLogout>, AuthError> {
        if !fresh
            && let Some((at, m)) = self.metadata.lock().await.get(&provider.name)
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        // Fetched without holding the cache, so a slow provider delays only its own sign-ins.
        let issuer =
            IssuerUrl::new(provider.issuer.clone()).map_err(|e| refused(&provider.name, e))?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|e| {
                let why = error_chain(&e);
                tracing::warn!(provider = %provider.name, error = %why, "OIDC discovery failed");
                refused(
                    &provider.name,
                    format!("the provider's discovery document: {why}"),
                )
            })?;
        let metadata = Arc::new(metadata);
        self.metadata
            .lock()
            .await
            .insert(provider.name.clone(), (Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    fn client(
        provider: &OidcProvider,
        metadata: &ProviderMetadataWithLogout,
        redirect_url: &str,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        AuthError,
    > {
        let redirect =
            RedirectUrl::new(redirect_url.to_string()).map_err(|e| refused(&provider.name, e))?;
        Ok(CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(provider.client_id.clone()),
            provider.client_secret().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// The provider's authorization URL for a new sign-in, with fresh state, nonce and PKCE.
    pub async fn start(
        &self,
        provider: &OidcProvider,
        redirect_url: &str,
    ) -> Result<Started, AuthError> {
        let metadata = self.metadata(provider, false).await?;
        let client = Self::client(provider, &metadata, redirect_url)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in provider.all_scopes().into_iter().skip(1) {
            request = request.add_scope(Scope::new(scope));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Trades the code for tokens and verifies the ID token; a token signed by a key the
    /// cached JWKS lacks gets one more try with the provider's keys fetched again.
    pub async fn finish(
        &self,
        provider: &OidcProvider,
        redirect_url: &str,
        code: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<VerifiedIdentity, AuthError> {
        let metadata = self.metadata(provider, false).await?;
        let client = Self::client(provider, &metadata, redirect_url)?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| refused(&provider.name, e))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| {
                refused(
                    &provider.name,
                    format!("the token request: {}", error_chain(&e)),
                )
            })?;
        let raw = tokens
            .id_token()
            .ok_or_else(|| refused(&provider.name, "the provider sent no ID token"))?
            .to_string();
        let token = FullIdToken::from_str(&raw).map_err(|e| refused(&provider.name, e))?;
        let nonce = Nonce::new(nonce.to_string());
        let verified = match token.claims(&with_clock_skew(client.id_token_verifier()), &nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                let metadata = self.metadata(provider, true).await?;
                let client = Self::client(provider, &metadata, redirect_url)?;
                token
                    .claims(&with_clock_skew(client.id_token_verifier()), &nonce)
                    .map(|c| serde_json::to_value(c).unwrap_or_default())
            }
            other => other.map(|c| serde_json::to_value(c).unwrap_or_default()),
        };
        let claims = verified
            .map_err(|e| refused(&provider.name, format!("the ID token: {}", error_chain(&e))))?;
        let text = |key: &str| claims.get(key).and_then(|v| v.as_str()).map(String::from);
        // Users are keyed by these two: never by an empty one.
        let (Some(issuer), Some(subject)) = (text("iss"), text("sub")) else {
            return Err(refused(
                &provider.name,
                "the ID token names no issuer or subject",
            ));
        };
        if issuer.is_empty() || subject.is_empty() {
            return Err(refused(
                &provider.name,
                "the ID token names no issuer or subject",
            ));
        }
        Ok(VerifiedIdentity {
            issuer,
            subject,
            claims,
        })
    }

    /// Where to send the browser to end its session at the provider too, when the provider
    /// offers RP-initiated logout.
    pub async fn logout_url(&self, provider: &OidcProvider, after: &str) -> Option<String> {
        let metadata = self.metadata(provider, false).await.ok()?;
        let endpoint = metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let mut request =
            LogoutRequest::from(endpoint).set_client_id(ClientId::new(provider.client_id.clone()));
        if let Ok(after) = PostLogoutRedirectUrl::new(after.to_string()) {
            request = request.set_post_logout_redirect_uri(after);
        }
        Some(request.http_get_url().to_string())
    }
}

/// How far the provider's clock may be from ours: a token this much past its expiry still
/// passes, one issued further in the future does not.
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(120);

fn with_clock_skew(
    verifier: openidconnect::IdTokenVerifier<'_, CoreJsonWebKey>,
) -> openidconnect::IdTokenVerifier<'_, CoreJsonWebKey> {
    verifier
        .set_time_fn(|| chrono::Utc::now() - CLOCK_SKEW)
        .set_issue_time_verifier_fn(|issued| {
            if issued > chrono::Utc::now() + CLOCK_SKEW {
                Err(format!("issued in the future ({issued})"))
            } else {
                Ok(())
            }
        })
}

/// An error and its causes on one line ("the token request: …: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// The values of `claim` as group names: a list of names, one name, or an object's keys
/// (Zitadel's `urn:zitadel:iam:org:project:roles`). Keycloak's full group paths (`/ops`)
/// match both as written and without the leading slash.
pub fn groups(claims: &serde_json::Value, claim: &str) -> Vec<String> {
    let names: Vec<String> = match claims.get(claim) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        Some(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => vec![],
    };
    let mut all = names.clone();
    all.extend(
        names
            .iter()
            .filter_map(|n| n.strip_prefix('/').map(String::from)),
    );
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn groups_come_as_lists_single_names_or_object_keys() {
        let claims = json!({
            "groups": ["/ops", "dev"],
            "team": "sre",
            "urn:zitadel:iam:org:project:roles": {"acme-admin": {"1": "org"}},
            "weird": 5,
        });
        assert_eq!(groups(&claims, "groups"), ["/ops", "dev", "ops"]);
        assert_eq!(groups(&claims, "team"), ["sre"]);
        assert_eq!(
            groups(&claims, "urn:zitadel:iam:org:project:roles"),
            ["acme-admin"]
        );
        assert!(groups(&claims, "weird").is_empty());
        assert!(groups(&claims, "missing").is_empty());
    }

    #[test]
    fn an_unreachable_provider_is_a_clear_refusal() {
        let provider: OidcProvider = serde_yaml::from_str(
            "name: kc\nissuer: http://127.0.0.1:9/realms/x\nclient_id: opsboard\n",
        )
        .unwrap();
        let providers = Providers::new(vec![provider.clone()]).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = runtime
            .block_on(providers.start(&provider, "http://127.0.0.1:1/cb"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("sign-in through kc failed: the provider's discovery document"),
            "{err}"
        );
    }
}
