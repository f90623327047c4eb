//! The HTTP API and pages: an axum router built from one `routes` list per resource, each route
//! declared with the [`Access`] it needs (see [`access`]). Handlers extract, make one domain call
//! and format; errors go through [`ApiError`].

mod access;
mod account;
mod actions;
mod admin;
mod alerts;
mod api;
mod attachments;
mod audit;
mod dashboards;
mod error;
mod extract;
mod health;
mod influx;
mod login;
mod oidc;
mod otlp;
mod pages;
mod panel_actions;
mod panel_page;
mod panel_query;
mod panels;
mod prom;
mod query;
mod serve;
mod streams;
mod subscriptions;
mod tables;
mod views;
mod write;

pub use access::{Access, BodyLimit, Caller, Route};
pub use error::ApiError;
pub use serve::{Limits as ConnectionLimits, serve};

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Uri};

use crate::auth::Auth;
use crate::config::ServerConfig;
use crate::panels::PanelEngine;
use crate::query::QueryEngine;
use crate::render::Pages;
use crate::storage::{Store, TenantStore};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub engine: Arc<QueryEngine>,
    pub config: Arc<ServerConfig>,
    /// Each tenant's configuration as last reloaded.
    pub configs: Arc<crate::live::LiveConfigs>,
    pub panels: Arc<PanelEngine>,
    pub pages: Arc<Pages>,
    pub auth: Arc<Auth>,
    pub alerts: Arc<crate::alerts::AlertEngine>,
    pub actions: Arc<crate::actions::Actions>,
    /// The tenants whose alert rules and upkeep this node runs.
    pub leases: Arc<crate::cluster::Leases>,
    /// Cookies carry `Secure` (see [`cookies_must_be_secure`]).
    pub secure_cookies: bool,
    /// Event streams open per caller.
    pub streams: Arc<streams::StreamCounts>,
}

/// Cookies are `Secure` behind TLS, and whenever the server listens beyond loopback: a session
/// must not cross a network in the clear (serve plain HTTP on loopback only, or put TLS in
/// front and set `auth.behind_tls`).
pub fn cookies_must_be_secure(behind_tls: bool, listening_on: std::net::IpAddr) -> bool {
    behind_tls || !listening_on.is_loopback()
}

impl AppState {
    async fn tenant(&self, name: &str) -> Result<Arc<TenantStore>, ApiError> {
        Ok(self.store.tenant(name).await?)
    }

    /// The tenant's store for a request that runs queries for its caller (SQL, panel answers,
    /// exports, dashboard pages): counted against the tenant's `quotas.queries_per_minute`,
    /// refused with 429 past it.
    async fn tenant_for_query(&self, name: &str) -> Result<Arc<TenantStore>, ApiError> {
        let tenant = self.tenant(name).await?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        tenant.usage().admit_query(&tenant.quotas(), now_ms)?;
        Ok(tenant)
    }
}

/// Every route of the server, with the access each needs. The router is built from this list
/// and nothing else, so a route cannot exist without its check (the isolation tests walk it).
pub fn routes() -> Vec<Route> {
    [
        health::routes(),
        write::routes(),
        influx::routes(),
        prom::routes(),
        otlp::routes(),
        query::routes(),
        tables::routes(),
        dashboards::routes(),
        panels::routes(),
        pages::routes(),
        panel_page::routes(),
        login::routes(),
        oidc::routes(),
        account::routes(),
        subscriptions::routes(),
        admin::routes(),
        audit::routes(),
        alerts::routes(),
        actions::routes(),
        attachments::routes(),
        api::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for route in routes() {
        let limit = match route.body {
            BodyLimit::Request => state.config.http.max_request_bytes,
            BodyLimit::Ingest => state.config.ingest.max_body_bytes,
            BodyLimit::Attachment => state.config.attachments.max_bytes,
        };
        let (path, handler) = route.guarded(&state);
        router = router.route(path, handler.layer(DefaultBodyLimit::max(limit)));
    }
    let behind_tls = state.config.auth.behind_tls;
    let policy = content_security_policy(&state.config.auth.oidc);
    router
        .fallback(|uri: Uri| async move { ApiError::NotFound(uri.path().to_string()) })
        .layer(axum::middleware::from_fn(error::api_refusals_as_json))
        .layer(axum::middleware::map_response(move |r| {
            security_headers(r, policy.clone())
        }))
        .layer(axum::middleware::map_response(
            move |mut response: axum::response::Response| async move {
                if behind_tls {
                    response.headers_mut().insert(
                        axum::http::header::STRICT_TRANSPORT_SECURITY,
                        axum::http::HeaderValue::from_static("max-age=31536000"),
                    );
                }
                response
            },
        ))
        .with_state(state)
}

/// The pages carry no inline script or style (placement is by class, behaviour by the one
/// script file), so the policy can be strict: a template panel's HTML cannot run script either.
/// Signing out may answer the form with a redirect to a sign-in provider's logout page, and
/// browsers hold form redirects to `form-action` too: the providers' origins are listed there.
fn content_security_policy(providers: &[crate::config::OidcProvider]) -> HeaderValue {
    let mut form_action = String::from("'self'");
    for provider in providers {
        if let Ok(url) = url::Url::parse(&provider.issuer) {
            form_action.push(' ');
            form_action.push_str(&url.origin().ascii_serialization());
        }
    }
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         object-src 'none'; base-uri 'none'; form-action {form_action}; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

/// Headers on every response: the content security policy and its companions.
async fn security_headers(
    mut response: axum::response::Response,
    policy: HeaderValue,
) -> axum::response::Response {
    use axum::http::header;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // New keys, generated passwords, TOTP secrets and recovery codes appear in answers: nothing
    // is kept by the browser or a proxy unless the handler says so (static files do).
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::cookies_must_be_secure;

    #[test]
    fn cookies_are_secure_off_loopback_or_behind_tls() {
        let ip = |s: &str| s.parse().unwrap();
        assert!(!cookies_must_be_secure(false, ip("127.0.0.1")));
        assert!(!cookies_must_be_secure(false, ip("::1")));
        assert!(cookies_must_be_secure(true, ip("127.0.0.1")));
        assert!(cookies_must_be_secure(false, ip("0.0.0.0")));
        assert!(cookies_must_be_secure(false, ip("192.0.2.10")));
    }
}
