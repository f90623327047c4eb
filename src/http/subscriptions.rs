//! One's own alert subscriptions (`/account/notifications`): for each tenant one may read,
//! whether its alerts reach one by email and/or in one's own in-app list, and which severities
//! and rules. Routes send to subscribers by naming the built-in channel `subscribers`. The
//! same as JSON under `/api/v1/account/subscriptions` for scripts signed in with a session.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::access::{Access, Caller, Route};
use super::alerts::notification_json;
use super::error::{ApiError, PageError};
use super::extract::{Form, user_json};
use crate::alerts::Subscription;
use crate::auth::{AuthError, Need, Principal};
use crate::config::Severity;

const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];
/// Notices of one's own shown per tenant.
const NOTICES_SHOWN: i64 = 20;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/account/notifications", Access::SignedIn, page),
        Route::post("/account/notifications", Access::SignedIn, save_form),
        Route::get("/api/v1/account/subscriptions", Access::SignedIn, list),
        Route::post("/api/v1/account/subscriptions", Access::SignedIn, save_json),
    ]
}

fn user_id(principal: &Principal) -> Result<i64, AuthError> {
    principal
        .user_id()
        .ok_or_else(|| AuthError::Forbidden("subscriptions belong to users, not API keys".into()))
}

/// Checks a subscription against what the user may read and the tenant's rules.
fn checked(
    state: &AppState,
    principal: &Principal,
    s: Subscription,
) -> Result<Subscription, String> {
    if !principal.allows(&s.tenant, Need::Read) {
        return Err(format!("no tenant `{}` you can read", s.tenant));
    }
    if let Some(bad) = s
        .severities
        .iter()
        .find(|v| !SEVERITIES.contains(&v.as_str()))
    {
        return Err(format!(
            "severity `{bad}`: expected one of {}",
            SEVERITIES.join(", ")
        ));
    }
    let rules = rule_names(state, &s.tenant);
    if let Some(bad) = s.rules.iter().find(|r| !rules.contains(r)) {
        return Err(format!("tenant `{}` has no alert rule `{bad}`", s.tenant));
    }
    Ok(s)
}

fn rule_names(state: &AppState, tenant: &str) -> Vec<String> {
    state
        .configs
        .current(tenant)
        .map(|(c, _)| {
            c.alerts
                .rules
                .iter()
                .map(|r| r.config.name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Every tenant the user may read, with its subscription (empty when none) and rules.
async fn overview(state: &AppState, principal: &Principal) -> Result<Vec<Value>, ApiError> {
    let id = user_id(principal)?;
    let store = state.alerts.store();
    let mine = store.subscriptions(id).await?;
    let mut out = vec![];
    for tenant in state.configs.dashboard_tenants() {
        if !principal.allows(&tenant, Need::Read) {
            continue;
        }
        let subscription = mine
            .iter()
            .find(|s| s.tenant == tenant)
            .cloned()
            .unwrap_or_else(|| Subscription {
                tenant: tenant.clone(),
                ..Subscription::default()
            });
        let notices: Vec<Value> = store
            .user_notifications(id, &tenant, NOTICES_SHOWN)
            .await?
            .iter()
            .map(|n| notification_json(&tenant, n, super::alerts::time))
            .collect();
        out.push(json!({
            "tenant": tenant,
            "subscription": subscription,
            "rules": rule_names(state, &tenant),
            "notices": notices,
        }))
    }
    Ok(out)
}

async fn page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, PageError> {
    render(&state, caller.principal()?, None).await
}

async fn render(
    state: &AppState,
    principal: &Principal,
    error: Option<String>,
) -> Result<Response, PageError> {
    let tenants = overview(state, principal).await?;
    let status = if error.is_some() {
        axum::http::StatusCode::BAD_REQUEST
    } else {
        axum::http::StatusCode::OK
    };
    let html = state.pages.page(
        "subscriptions.html",
        minijinja::context! {
            title => "Notifications",
            user => user_json(principal, None),
            tenants => tenants,
            severities => SEVERITIES,
            error => error,
        },
    )?;
    Ok((status, Html(html)).into_response())
}

async fn save_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, PageError> {
    let principal = caller.principal()?;
    let form = Form::parse(&body);
    let asked = Subscription {
        tenant: form.get("tenant").to_string(),
        severities: form.all("severity").into_iter().map(String::from).collect(),
        rules: form.all("rule").into_iter().map(String::from).collect(),
        email: form.get("email") == "on",
        in_app: form.get("in_app") == "on",
    };
    match checked(&state, principal, asked) {
        Ok(s) => {
            let store = state.alerts.store();
            store
                .subscribe(user_id(principal)?, &s)
                .await
                .map_err(ApiError::from)?;
            Ok(Redirect::to("/account/notifications").into_response())
        }
        Err(message) => render(&state, principal, Some(message)).await,
    }
}

/// One's own alert subscriptions, per tenant one may read (users only, not keys).
#[utoipa::path(get, path = "/api/v1/account/subscriptions", tag = "account",
    responses((status = 200, body = Object), (status = 403, body = crate::http::api::Error)))]
async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let tenants = overview(&state, caller.principal()?).await?;
    Ok(axum::Json(json!({ "tenants": tenants })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionBody {
    tenant: String,
    #[serde(default)]
    severities: Vec<Severity>,
    #[serde(default)]
    rules: Vec<String>,
    #[serde(default)]
    email: bool,
    #[serde(default)]
    in_app: bool,
}

/// Saves one's subscription for a tenant: channels (email, in-app), severities and rules.
#[utoipa::path(post, path = "/api/v1/account/subscriptions", tag = "account",
    request_body(content = Object), responses((status = 200, body = Object), (status = 400, body = crate::http::api::Error), (status = 403, body = crate::http::api::Error)))]
async fn save_json(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = caller.principal()?;
    let asked: SubscriptionBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("subscription: {e}")))?;
    let asked = Subscription {
        tenant: asked.tenant,
        severities: asked
            .severities
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        rules: asked.rules,
        email: asked.email,
        in_app: asked.in_app,
    };
    let s = checked(&state, principal, asked).map_err(ApiError::BadRequest)?;
    state
        .alerts
        .store()
        .subscribe(user_id(principal)?, &s)
        .await?;
    Ok(axum::Json(json!({ "subscription": s })).into_response())
}
