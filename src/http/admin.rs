//! Administration pages. Global admins: users (create, disable, reset password or MFA). Tenant
//! admins: their tenant's members and API keys. The audit log pages are `audit.rs`.
//! Secrets (a generated password, a new key) are shown once, on the page answering the POST.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use minijinja::context;
use serde_json::{Value, json};

use super::access::{Access, Caller, Route};
use super::error::PageError;
use super::extract::{Form, user_json};
use super::{ApiError, AppState};
use crate::auth::{AuthError, KeyInfo, Need, NewKeyRequest, Role, Scope, random_password};
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
        Route::get("/t/{tenant}/admin", manage, tenant_page),
        Route::post("/t/{tenant}/admin/members", manage, grant),
        Route::post(
            "/t/{tenant}/admin/members/{id}/remove",
            manage,
            remove_member,
        ),
        Route::post("/t/{tenant}/admin/keys", manage, create_key),
        Route::post("/t/{tenant}/admin/keys/{id}/{action}", manage, key_action),
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

pub(super) fn time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "—".into())
}

fn key_json(k: &KeyInfo, now: i64) -> Value {
    json!({
        "id": k.id, "name": k.name, "scopes": Scope::join(&k.scopes), "created": time(Some(k.created_at)),
        "created_by": k.created_by, "expires": time(k.expires_at), "last_used": time(k.last_used_at), "status": k.status(now),
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
        let role = Role::parse(form.get("role"))?;
        let user = super::api::member(&state, &caller, &tenant, form.get("email")).await?;
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
    let result = async {
        let is_member = state.auth.roles(id).await?.contains_key(&tenant);
        if !is_member {
            return Err(AuthError::NotFound(format!("{tenant} has no such member")));
        }
        state
            .auth
            .revoke_membership(&caller.actor(), id, &tenant)
            .await
            .map(|_| "Member removed.".to_string())
    }
    .await;
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
    super::api::tenant_key(&state, &tenant, &id).await?;
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
