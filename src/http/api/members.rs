//! `/api/v1/tenants/{tenant}/members`: the tenant admin's members, as on the tenant's access
//! page — list, grant (or change) a role by email, remove. A tenant admin reaches only users
//! already in the tenant; an unknown email and an outsider's get the same 404, so the API
//! cannot be used to find out who has an account. Global admins may add anyone.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::access::{Access, Caller, Route};
use super::super::{ApiError, AppState};
use super::{json_body, user_id};
use crate::auth::{AuthError, Need, Role, User};

pub fn routes() -> Vec<Route> {
    let manage = Access::Tenant(Need::Manage);
    vec![
        Route::get("/api/v1/tenants/{tenant}/members", manage, list),
        Route::post("/api/v1/tenants/{tenant}/members", manage, grant),
        Route::delete("/api/v1/tenants/{tenant}/members/{id}", manage, remove),
    ]
}

/// A member of the tenant.
#[derive(Serialize, ToSchema)]
pub struct Member {
    pub user_id: i64,
    pub email: String,
    pub name: String,
    #[schema(example = "viewer")]
    pub role: String,
    pub disabled: bool,
}

fn as_member(user: User, role: Role) -> Member {
    Member {
        user_id: user.id,
        email: user.email,
        name: user.name,
        role: role.as_str().to_string(),
        disabled: user.disabled,
    }
}

/// The tenant's members and their roles.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/members", tag = "members",
    params(("tenant" = String, Path)),
    responses((status = 200, body = Vec<Member>), (status = 404, body = super::Error)))]
async fn list(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<Member>>, ApiError> {
    state.tenant(&tenant).await?;
    let members = state.auth.members(&tenant).await?;
    Ok(Json(
        members.into_iter().map(|(u, r)| as_member(u, r)).collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    #[schema(example = "ops@example.com")]
    pub email: String,
    /// `viewer`, `editor` or `admin`.
    #[schema(example = "editor")]
    pub role: String,
}

/// Gives a user a role in the tenant (or changes it).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/members", tag = "members",
    params(("tenant" = String, Path)), request_body = Grant,
    responses((status = 200, body = Member), (status = 400, body = super::Error),
        (status = 404, body = super::Error)))]
async fn grant(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<Json<Member>, ApiError> {
    state.tenant(&tenant).await?;
    let grant: Grant = json_body(&body, "{\"email\": \"…\", \"role\": \"viewer\"}")?;
    let role = Role::parse(&grant.role)?;
    let user = member(&state, &caller, &tenant, &grant.email).await?;
    state
        .auth
        .grant(&caller.actor(), user.id, &tenant, role)
        .await?;
    Ok(Json(as_member(user, role)))
}

/// Removes a member from the tenant.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/members/{id}", tag = "members",
    params(("tenant" = String, Path), ("id" = i64, Path, description = "The user's id")),
    responses((status = 204), (status = 404, body = super::Error)))]
async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = user_id(&id)?;
    state.tenant(&tenant).await?;
    if !state.auth.roles(id).await?.contains_key(&tenant) {
        return Err(AuthError::NotFound(format!("{tenant} has no member {id}")).into());
    }
    state
        .auth
        .revoke_membership(&caller.actor(), id, &tenant)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The user a tenant admin may change: one already in the tenant (global admins: anyone). An
/// email of nobody and an email of someone outside the tenant get the same answer, so the
/// form cannot be used to find out who has an account.
pub(in crate::http) async fn member(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    email: &str,
) -> Result<User, AuthError> {
    let unknown = || AuthError::NotFound(format!("{tenant} has no member with that email"));
    let Ok(user) = state.auth.user_by_email(email).await else {
        return Err(unknown());
    };
    let global = caller
        .principal
        .as_deref()
        .is_some_and(|p| p.is_global_admin());
    if global || state.auth.roles(user.id).await?.contains_key(tenant) {
        Ok(user)
    } else {
        Err(unknown())
    }
}
