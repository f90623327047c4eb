//! Every route is declared with the access it needs, and the router is built from those
//! declarations, so no route exists without a check. The guard runs on each matched route:
//! who is calling (bearer key or session cookie), CSRF for cookie-authenticated changes, the
//! per-key rate limit, then the route's [`Access`] against the `{tenant}` in the path.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::MethodRouter;
use serde_json::json;

use super::extract::{client_ip, cookie};
use super::{ApiError, AppState};
use crate::auth::{Actor, AuditEvent, AuthError, Need, Principal};

/// What a route needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Access {
    /// Nothing: health, login, static files.
    Public,
    /// A session even if its second factor is still outstanding: the MFA steps and logout.
    PartlySignedIn,
    /// Any signed-in caller: the tenant picker, one's own account.
    SignedIn,
    /// The path's `{tenant}`, with this need.
    Tenant(Need),
    /// The tenant named by this query parameter, with this need: the InfluxDB write APIs
    /// (`/api/v2/write?bucket=`, `/write?db=`). Their clients' own credential forms are taken
    /// too: `Authorization: Token <key>`, basic auth with the key as password, `?p=<key>`.
    TenantFrom(Need, &'static str),
    /// Global admins (or global keys with the admin scope).
    GlobalAdmin,
}

pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    /// How large a body the route takes.
    pub body: BodyLimit,
    handler: MethodRouter<AppState>,
}

/// Which configured limit bounds a route's request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// Forms and JSON: `http.max_request_bytes`.
    Request,
    /// Writes: `ingest.max_body_bytes`.
    Ingest,
    /// Uploaded files: `attachments.max_bytes`.
    Attachment,
}

impl Route {
    pub fn get<H: Handler<T, AppState>, T: 'static>(
        path: &'static str,
        access: Access,
        h: H,
    ) -> Self {
        Self::new(Method::GET, path, access, axum::routing::get(h))
    }

    pub fn post<H: Handler<T, AppState>, T: 'static>(
        path: &'static str,
        access: Access,
        h: H,
    ) -> Self {
        Self::new(Method::POST, path, access, axum::routing::post(h))
    }

    pub fn put<H: Handler<T, AppState>, T: 'static>(
        path: &'static str,
        access: Access,
        h: H,
    ) -> Self {
        Self::new(Method::PUT, path, access, axum::routing::put(h))
    }

    pub fn delete<H: Handler<T, AppState>, T: 'static>(
        path: &'static str,
        access: Access,
        h: H,
    ) -> Self {
        Self::new(Method::DELETE, path, access, axum::routing::delete(h))
    }

    fn new(
        method: Method,
        path: &'static str,
        access: Access,
        handler: MethodRouter<AppState>,
    ) -> Self {
        Self {
            method,
            path,
            access,
            body: BodyLimit::of(access),
            handler,
        }
    }

    /// The same route with another body limit than its access implies.
    pub fn with_body(mut self, body: BodyLimit) -> Self {
        self.body = body;
        self
    }

    /// The handler behind the guard for this route's access.
    pub(super) fn guarded(self, state: &AppState) -> (&'static str, MethodRouter<AppState>) {
        let guard = Guard {
            access: self.access,
            api: self.path.starts_with("/api/") || matches!(self.access, Access::TenantFrom(..)),
        };
        let layer = axum::middleware::from_fn_with_state((state.clone(), guard), guard_request);
        (self.path, self.handler.route_layer(layer))
    }
}

impl BodyLimit {
    /// Writes may carry large bodies; forms and JSON need little.
    fn of(access: Access) -> Self {
        if access == Access::Tenant(Need::Ingest) {
            Self::Ingest
        } else {
            Self::Request
        }
    }
}

#[derive(Clone, Copy)]
struct Guard {
    access: Access,
    api: bool,
}

/// The caller of a request that passed its guard, for handlers that need to know.
#[derive(Clone)]
pub struct Caller {
    pub principal: Option<Arc<Principal>>,
    pub ip: String,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        let name = self
            .principal
            .as_ref()
            .map(|p| p.actor())
            .unwrap_or_else(|| "anonymous".into());
        Actor::new(name, Some(self.ip.clone()))
    }

    /// The principal of a route whose access requires one.
    pub fn principal(&self) -> Result<&Principal, ApiError> {
        self.principal
            .as_deref()
            .ok_or(ApiError::Auth(AuthError::Unauthenticated))
    }
}

/// Largest form body read for its CSRF field.
const FORM_LIMIT: usize = 64 * 1024;

async fn guard_request(
    State((state, guard)): State<(AppState, Guard)>,
    params: Option<Path<std::collections::HashMap<String, String>>>,
    request: Request,
    next: Next,
) -> Response {
    match check(&state, guard, params, request).await {
        Ok(request) => next.run(request).await,
        Err(response) => response,
    }
}

async fn check(
    state: &AppState,
    guard: Guard,
    params: Option<Path<std::collections::HashMap<String, String>>>,
    mut request: Request,
) -> Result<Request, Response> {
    let ip = client_ip(state, &request);
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let refuse = |e: AuthError| refusal(guard.api, e, &target);
    let influx = matches!(guard.access, Access::TenantFrom(..));
    let query = request.uri().query().unwrap_or("").to_string();
    let principal = identify(state, request.headers(), influx.then_some(query.as_str()))
        .await
        .map_err(refuse)?
        .map(Arc::new);
    let caller = Caller {
        principal: principal.clone(),
        ip,
    };
    let mut refused: Option<(String, Option<String>)> = None;
    if guard.access != Access::Public {
        let Some(p) = &principal else {
            return Err(refuse(AuthError::Unauthenticated));
        };
        admit(state, &guard, p, &target).map_err(|refused| *refused)?;
        let tenant = request_tenant(&guard, &query, &params).unwrap_or_default();
        refused = permission_refusal(&guard, p, &tenant);
        if refused.is_none()
            && let Some(session) = p.session()
            && !matches!(method, Method::GET | Method::HEAD)
        {
            let (ok, rebuilt) = csrf_matches(request, &session.csrf).await;
            request = rebuilt;
            if !ok {
                let reason = "CSRF token missing or wrong; reload the page and try again";
                refused = Some((reason.into(), None));
            }
        }
    }
    if let Some((reason, tenant)) = refused {
        let mut event = AuditEvent::denied(
            "access",
            json!({"method": method.as_str(), "path": path, "reason": reason}),
        );
        event.tenant = tenant;
        state.auth.audit(&caller.actor(), event).await;
        return Err(refuse(AuthError::Forbidden(reason)));
    }
    if guard.api
        && let Some(usage) = request_tenant(&guard, &query, &params)
            .and_then(|tenant| state.store.meter().existing(&tenant))
    {
        usage.add(crate::usage::Counter::ApiRequests, 1);
    }
    request.extensions_mut().insert(caller);
    Ok(request)
}

/// The tenant a request names: the route's query parameter for the InfluxDB write APIs, else
/// the path's `{tenant}`.
fn request_tenant(
    guard: &Guard,
    query: &str,
    params: &Option<Path<std::collections::HashMap<String, String>>>,
) -> Option<String> {
    match guard.access {
        Access::TenantFrom(_, param) => Some(query_param(query, param).unwrap_or_default()),
        _ => params.as_ref().and_then(|Path(p)| p.get("tenant")).cloned(),
    }
}

/// Before any permission: a half-signed-in session reaches only the MFA pages, and a key
/// over its rate is turned away.
fn admit(
    state: &AppState,
    guard: &Guard,
    p: &Principal,
    target: &str,
) -> Result<(), Box<Response>> {
    let pending = p.session().is_some_and(|s| s.mfa_pending);
    if pending && guard.access != Access::PartlySignedIn {
        return Err(Box::new(if guard.api {
            refusal(true, AuthError::Unauthenticated, target)
        } else {
            Redirect::to("/login/mfa").into_response()
        }));
    }
    if let crate::auth::PrincipalKind::Key { id, .. } = &p.kind
        && let Err(limited) = state.auth.take_key_token(id)
    {
        let error = AuthError::RateLimited {
            retry_after_secs: limited.retry_after_secs,
        };
        return Err(Box::new(refusal(guard.api, error, target)));
    }
    Ok(())
}

/// Why the route's access refuses `p`, and in which tenant; none when it is allowed.
fn permission_refusal(
    guard: &Guard,
    p: &Principal,
    tenant: &str,
) -> Option<(String, Option<String>)> {
    match guard.access {
        Access::Tenant(need) | Access::TenantFrom(need, _) if !p.allows(tenant, need) => Some((
            format!("no {} access to tenant {tenant}", need_name(need)),
            Some(tenant.to_string()),
        )),
        Access::GlobalAdmin if !p.is_global_admin() => {
            Some(("only global admins may do this".into(), None))
        }
        _ => None,
    }
}

fn need_name(need: Need) -> &'static str {
    match need {
        Need::Read => "read",
        Need::Ingest => "ingest",
        Need::Act | Need::Run => "editor",
        Need::Manage => "admin",
    }
}

/// Who is calling: a bearer key (which must be valid if given) or a live session cookie. On
/// the InfluxDB write APIs (`influx_query` is their query string) also the key in their
/// clients' forms.
async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    influx_query: Option<&str>,
) -> Result<Option<Principal>, AuthError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or("");
        let key = match influx_query {
            Some(_) => influx_key(value).ok_or_else(|| {
                AuthError::BadKey(
                    "expected `Authorization: Token <API key>`, `Bearer <API key>` or basic \
                     auth with the API key as password"
                        .into(),
                )
            }),
            None => value
                .strip_prefix("Bearer ")
                .map(str::to_string)
                .ok_or_else(|| {
                    AuthError::BadKey("expected `Authorization: Bearer <API key>`".into())
                }),
        }?;
        return state.auth.authenticate_key(key.trim()).await.map(Some);
    }
    if let Some(key) = influx_query.and_then(|q| query_param(q, "p")) {
        return state.auth.authenticate_key(key.trim()).await.map(Some);
    }
    match cookie(headers, state.auth.cookie_name()) {
        Some(token) => state.auth.session(token).await,
        None => Ok(None),
    }
}

/// The key in an InfluxDB client's `Authorization`: `Token k` (v2), `Bearer k`, or basic auth
/// whose password is the key (v1).
fn influx_key(value: &str) -> Option<String> {
    use base64::Engine;
    if let Some(key) = value
        .strip_prefix("Token ")
        .or_else(|| value.strip_prefix("Bearer "))
    {
        return Some(key.to_string());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_string())
}

/// One parameter of a query string, decoded.
pub(super) fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A cookie-authenticated change must carry the session's CSRF token, in the `X-CSRF-Token`
/// header (scripts) or the `_csrf` field of a urlencoded form. Returns the request rebuilt
/// around the body it had to read.
async fn csrf_matches(request: Request, expected: &str) -> (bool, Request) {
    if let Some(v) = request.headers().get("x-csrf-token") {
        let ok = v
            .to_str()
            .is_ok_and(|v| crate::auth::same_secret(v, expected));
        return (ok, request);
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (false, request);
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return (false, Request::from_parts(parts, Body::empty()));
    };
    let ok = url::form_urlencoded::parse(&bytes)
        .any(|(k, v)| k == "_csrf" && crate::auth::same_secret(&v, expected));
    (ok, Request::from_parts(parts, Body::from(bytes)))
}

/// 401/403/429 for the API (JSON), a redirect to the login page or an HTML error for pages.
fn refusal(api: bool, error: AuthError, target: &str) -> Response {
    let unauthenticated = matches!(error, AuthError::Unauthenticated);
    if !api && unauthenticated {
        let next: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
        return Redirect::to(&format!("/login?next={next}")).into_response();
    }
    let error = ApiError::Auth(error);
    if api {
        error.into_response()
    } else {
        let status = error.status();
        let mut response = super::error::PageError::from(error).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            *response.status_mut() = status;
        }
        response
    }
}
