//! Administration pages. Global admins: users (create, disable, reset password or MFA) and the
//! whole audit log. Tenant admins: their tenant's members and API keys, and its audit log.
//! Secrets (a generated password, a new key) are shown once, on the page answering the POST.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use minijinja::context;
use serde_json::{Value, json};

use super::access::{Access, Caller, Route};
use super::login::{Form, user_json};
use super::pages::PageError;
use super::{ApiError, AppState};
use crate::auth::{
    AuditFilter, AuthError, KeyInfo, Need, NewKeyRequest, Role, Scope, random_password,
};
use crate::config::HumanDuration;

pub fn routes() -> Vec<Route> {
    let manage = Access::Tenant(Need::Manage);
    vec![
        Route::get("/admin", Access::GlobalAdmin, users_page),
        Route::post("/admin/users", Access::GlobalAdmin, create_user),
        Route::post(
            "/admin/users/{id}/{action}",
            Access::GlobalAdmin,
            user_action,
        ),
        Route::get("/admin/audit", Access::GlobalAdmin, audit_all),
        Route::get("/t/{tenant}/admin", manage, tenant_page),
        Route::post("/t/{tenant}/admin/members", manage, grant),
        Route::post(
            "/t/{tenant}/admin/members/{id}/remove",
            manage,
            remove_member,
        ),
        Route::post("/t/{tenant}/admin/keys", manage, create_key),
        Route::post("/t/{tenant}/admin/keys/{id}/{action}", manage, key_action),
        Route::get("/t/{tenant}/admin/audit", manage, audit_tenant),
    ]
}

#[derive(Default)]
struct Notice {
    message: Option<String>,
    error: Option<String>,
    secret: Option<String>,
}

impl Notice {
    fn from_result(result: Result<String, AuthError>) -> Result<Self, PageError> {
        match result {
            Ok(message) => Ok(Self {
                message: Some(message),
                ..Self::default()
            }),
            Err(e @ (AuthError::Invalid(_) | AuthError::NotFound(_) | AuthError::Conflict(_))) => {
                Ok(Self {
                    error: Some(e.to_string()),
                    ..Self::default()
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}

async fn render_users(
    state: &AppState,
    caller: &Caller,
    notice: Notice,
) -> Result<Response, PageError> {
    let mut users = vec![];
    for u in state.auth.users().await? {
        let roles: Vec<Value> = state
            .auth
            .roles(u.id)
            .await?
            .into_iter()
            .map(|(t, r)| json!({"tenant": t, "role": r}))
            .collect();
        let mut v = serde_json::to_value(&u).unwrap_or_default();
        v["roles"] = json!(roles);
        users.push(v);
    }
    let html = state.pages.page(
        "admin.html",
        context! {
            title => "Users", user => user_json(caller.principal()?, None), users => users,
            tenants => state.auth.tenants(true).await?, message => notice.message, error => notice.error,
        },
    )?;
    Ok(Html(html).into_response())
}

async fn users_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, PageError> {
    render_users(&state, &caller, Notice::default()).await
}

async fn create_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = Form::parse(&body);
    let actor = caller.actor();
    let result = async {
        let password = random_password();
        let user = state
            .auth
            .create_user(
                &actor,
                form.get("email"),
                form.get("name"),
                &password,
                form.get("admin") == "on",
            )
            .await?;
        if !form.get("tenant").is_empty() {
            state
                .auth
                .grant(
                    &actor,
                    user.id,
                    form.get("tenant"),
                    Role::parse(form.get("role"))?,
                )
                .await?;
        }
        Ok(format!(
            "Created {}. Initial password (shown once): {password}",
            user.email
        ))
    }
    .await;
    render_users(&state, &caller, Notice::from_result(result)?).await
}

async fn user_action(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, action)): Path<(i64, String)>,
) -> Result<Response, PageError> {
    let actor = caller.actor();
    let auth = &state.auth;
    let result = match action.as_str() {
        "disable" if caller.principal()?.user_id() == Some(id) => {
            Err(AuthError::Invalid("you cannot disable yourself".into()))
        }
        "disable" => auth
            .set_disabled(&actor, id, true)
            .await
            .map(|_| "User disabled; their sessions ended.".to_string()),
        "enable" => auth
            .set_disabled(&actor, id, false)
            .await
            .map(|_| "User enabled.".to_string()),
        "password" => {
            let password = random_password();
            auth.set_password(&actor, id, &password)
                .await
                .map(|_| format!("New password (shown once): {password}"))
        }
        "mfa-reset" => auth
            .reset_mfa(&actor, id)
            .await
            .map(|_| "Authenticator removed.".to_string()),
        other => return Err(ApiError::NotFound(format!("no user action {other}")).into()),
    };
    render_users(&state, &caller, Notice::from_result(result)?).await
}

fn time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "—".into())
}

fn key_json(k: &KeyInfo, now: i64) -> Value {
    let status = if k.revoked_at.is_some() {
        "revoked"
    } else if k.expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    };
    json!({
        "id": k.id, "name": k.name, "scopes": Scope::join(&k.scopes), "created": time(Some(k.created_at)),
        "created_by": k.created_by, "expires": time(k.expires_at), "last_used": time(k.last_used_at), "status": status,
    })
}

async fn render_tenant(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    notice: Notice,
) -> Result<Response, PageError> {
    state.tenant(tenant).await?;
    let members: Vec<Value> = state
        .auth
        .members(tenant)
        .await?
        .into_iter()
        .map(|(u, r)| json!({"id": u.id, "email": u.email, "role": r}))
        .collect();
    let now = state.auth.now_ms();
    let keys: Vec<Value> = state
        .auth
        .keys(Some(tenant))
        .await?
        .iter()
        .map(|k| key_json(k, now))
        .collect();
    let html = state.pages.page(
        "tenant_admin.html",
        context! {
            title => format!("{tenant}: access"), user => user_json(caller.principal()?, Some(tenant)),
            tenant_name => tenant, members => members, keys => keys,
            message => notice.message, error => notice.error, secret => notice.secret,
        },
    )?;
    Ok(Html(html).into_response())
}

async fn tenant_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
) -> Result<Response, PageError> {
    render_tenant(&state, &caller, &tenant, Notice::default()).await
}

async fn grant(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = Form::parse(&body);
    let result = async {
        let user = state.auth.user_by_email(form.get("email")).await?;
        let role = Role::parse(form.get("role"))?;
        state
            .auth
            .grant(&caller.actor(), user.id, &tenant, role)
            .await?;
        Ok(format!(
            "{} is now {} of {tenant}.",
            user.email,
            role.as_str()
        ))
    }
    .await;
    render_tenant(&state, &caller, &tenant, Notice::from_result(result)?).await
}

async fn remove_member(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<Response, PageError> {
    let result = state
        .auth
        .revoke_membership(&caller.actor(), id, &tenant)
        .await
        .map(|_| "Member removed.".to_string());
    render_tenant(&state, &caller, &tenant, Notice::from_result(result)?).await
}

async fn create_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = Form::parse(&body);
    let result = async {
        let scopes = Scope::parse_list(&form.all("scope").join(","))?;
        let expires_at = match form.get("expires") {
            "" => None,
            text => {
                let d: HumanDuration = text
                    .parse()
                    .map_err(|e| AuthError::Invalid(format!("expires: {e}")))?;
                Some(state.auth.now_ms() + d.0.as_millis() as i64)
            }
        };
        let request = NewKeyRequest {
            name: form.get("name").to_string(),
            tenant: Some(tenant.clone()),
            scopes,
            expires_at,
        };
        state.auth.create_key(&caller.actor(), request).await
    }
    .await;
    let notice = match result {
        Ok((info, secret)) => Notice {
            message: Some(format!("Key {} created.", info.id)),
            secret: Some(secret),
            ..Notice::default()
        },
        Err(e) => Notice::from_result(Err(e))?,
    };
    render_tenant(&state, &caller, &tenant, notice).await
}

async fn key_action(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, id, action)): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    // A tenant admin names keys by id: the key must be this tenant's, whatever the id says.
    let key = state
        .auth
        .key(&id)
        .await
        .ok()
        .filter(|k| k.tenant.as_deref() == Some(tenant.as_str()));
    if key.is_none() {
        return Err(ApiError::Auth(AuthError::NotFound(format!(
            "no API key {id} in tenant {tenant}"
        )))
        .into());
    }
    let actor = caller.actor();
    let notice = match action.as_str() {
        "revoke" => Notice::from_result(
            state
                .auth
                .revoke_key(&actor, &id)
                .await
                .map(|_| format!("Key {id} revoked.")),
        )?,
        "rotate" => match state.auth.rotate_key(&actor, &id).await {
            Ok((info, secret)) => Notice {
                message: Some(format!("Key {id} revoked; its replacement is {}.", info.id)),
                secret: Some(secret),
                ..Notice::default()
            },
            Err(e) => Notice::from_result(Err(e))?,
        },
        other => return Err(ApiError::NotFound(format!("no key action {other}")).into()),
    };
    render_tenant(&state, &caller, &tenant, notice).await
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

async fn audit_all(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, PageError> {
    audit_page(&state, &caller, None, q).await
}

async fn audit_tenant(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, PageError> {
    audit_page(&state, &caller, Some(tenant), q).await
}

fn parse_time(text: Option<&str>, name: &str, now_ms: i64) -> Result<Option<i64>, ApiError> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => crate::panels::parse_instant(t, now_ms * 1_000_000)
            .map(|ns| Some(ns / 1_000_000))
            .map_err(|e| ApiError::BadRequest(format!("{name}: {e}"))),
    }
}

async fn audit_page(
    state: &AppState,
    caller: &Caller,
    tenant: Option<String>,
    q: AuditQuery,
) -> Result<Response, PageError> {
    let now = state.auth.now_ms();
    let filter = AuditFilter {
        tenant: tenant.clone(),
        actor: q.actor.clone(),
        action: q.action.clone(),
        outcome: q.outcome.clone(),
        from_ms: parse_time(q.from.as_deref(), "from", now)?,
        to_ms: parse_time(q.to.as_deref(), "to", now)?,
        limit: Some(if q.format.is_some() { 100_000 } else { 500 }),
    };
    let entries = state.auth.audit_entries(&filter).await?;
    let scope = tenant.as_deref().unwrap_or("all");
    let audit_event = |rows: usize| {
        let mut e = crate::auth::AuditEvent::ok(
            "audit.export",
            json!({"rows": rows, "filter": {"actor": q.actor, "action": q.action, "outcome": q.outcome, "from": q.from, "to": q.to}}),
        );
        e.tenant = tenant.clone();
        e
    };
    match q.format.as_deref() {
        Some("csv") => {
            let mut out = csv::Writer::from_writer(vec![]);
            let _ = out.write_record([
                "time", "actor", "tenant", "ip", "action", "outcome", "details",
            ]);
            for e in &entries {
                let _ = out.write_record([
                    chrono::DateTime::from_timestamp_millis(e.at)
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default(),
                    e.actor.clone(),
                    e.tenant.clone().unwrap_or_default(),
                    e.ip.clone().unwrap_or_default(),
                    e.action.clone(),
                    e.outcome.clone(),
                    e.details.to_string(),
                ]);
            }
            let body = out
                .into_inner()
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            state
                .auth
                .audit(&caller.actor(), audit_event(entries.len()))
                .await;
            let disposition = format!("attachment; filename=\"audit-{scope}.csv\"");
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv".to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                body,
            )
                .into_response())
        }
        Some("json") => {
            state
                .auth
                .audit(&caller.actor(), audit_event(entries.len()))
                .await;
            Ok(axum::Json(entries).into_response())
        }
        Some(other) => {
            Err(ApiError::BadRequest(format!("format must be csv or json, not {other:?}")).into())
        }
        None => {
            let rows: Vec<Value> = entries
                .iter()
                .map(|e| {
                    json!({
                        "time": time(Some(e.at)), "actor": e.actor, "tenant": e.tenant, "ip": e.ip,
                        "action": e.action, "outcome": e.outcome, "details": e.details.to_string(),
                    })
                })
                .collect();
            let mut csv_query = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in [
                ("actor", &q.actor),
                ("action", &q.action),
                ("outcome", &q.outcome),
                ("from", &q.from),
                ("to", &q.to),
            ] {
                if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                    csv_query.append_pair(k, v);
                }
            }
            csv_query.append_pair("format", "csv");
            let base = match &tenant {
                Some(t) => format!("/t/{t}/admin/audit"),
                None => "/admin/audit".into(),
            };
            let html = state.pages.page(
                "audit.html",
                context! {
                    title => "Audit log", user => user_json(caller.principal()?, tenant.as_deref()),
                    tenant_name => tenant, entries => rows, filter => json!({"actor": q.actor, "action": q.action, "outcome": q.outcome}),
                    from => q.from.clone().unwrap_or_default(), to => q.to.clone().unwrap_or_default(),
                    csv_url => format!("{base}?{}", csv_query.finish()),
                },
            )?;
            Ok(Html(html).into_response())
        }
    }
}
