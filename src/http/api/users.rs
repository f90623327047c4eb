//! `/api/v1/users`: the global admin's user management, as on the `/admin` page — list,
//! create (the initial password is generated and shown once), disable and enable, a new
//! password, removing the authenticator, and making or unmaking global admins.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

use super::super::access::{Access, Caller, Route};
use super::super::{ApiError, AppState};
use super::{json_body, rfc3339, user_id};
use crate::auth::{AuthError, Role, User, random_password};

pub fn routes() -> Vec<Route> {
    let admin = Access::GlobalAdmin;
    vec![
        Route::get("/api/v1/users", admin, list),
        Route::post("/api/v1/users", admin, create),
        Route::get("/api/v1/users/{id}", admin, one),
        Route::post("/api/v1/users/{id}/disable", admin, disable),
        Route::post("/api/v1/users/{id}/enable", admin, enable),
        Route::post("/api/v1/users/{id}/password", admin, new_password),
        Route::delete("/api/v1/users/{id}/mfa", admin, remove_mfa),
        Route::put("/api/v1/users/{id}/admin", admin, set_admin),
    ]
}

/// A user account.
#[derive(Serialize, ToSchema)]
pub struct ApiUser {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub global_admin: bool,
    pub disabled: bool,
    pub mfa_enabled: bool,
    pub created_at: String,
    /// Role per tenant (active tenants only).
    pub roles: BTreeMap<String, String>,
}

async fn api_user(state: &AppState, user: User) -> Result<ApiUser, ApiError> {
    let roles = state
        .auth
        .roles(user.id)
        .await?
        .into_iter()
        .map(|(tenant, role)| (tenant, role.as_str().to_string()))
        .collect();
    Ok(ApiUser {
        id: user.id,
        email: user.email,
        name: user.name,
        global_admin: user.is_admin,
        disabled: user.disabled,
        mfa_enabled: user.mfa_enabled,
        created_at: rfc3339(user.created_at),
        roles,
    })
}

/// Every user.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = Vec<ApiUser>), (status = 403, body = super::Error)))]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<ApiUser>>, ApiError> {
    let mut users = vec![];
    for user in state.auth.users().await? {
        users.push(api_user(&state, user).await?);
    }
    Ok(Json(users))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(example = "ops@example.com")]
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub global_admin: bool,
    /// A tenant to join at once, with `role`.
    pub tenant: Option<String>,
    /// `viewer`, `editor` or `admin` (with `tenant`; `viewer` when absent).
    pub role: Option<String>,
}

/// A new user and the initial password, shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedUser {
    pub user: ApiUser,
    pub password: String,
}

/// Creates a user with a generated password (shown once in the answer).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = CreatedUser), (status = 400, body = super::Error),
        (status = 403, body = super::Error), (status = 404, body = super::Error),
        (status = 409, body = super::Error)))]
async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    let new: NewUser = json_body(
        &body,
        "{\"email\", \"name\", \"global_admin\", \"tenant\", \"role\"}",
    )?;
    let role = match (&new.tenant, new.role.as_deref()) {
        (None, Some(_)) => return Err(ApiError::BadRequest("`role` needs `tenant`".into())),
        (_, role) => Role::parse(role.unwrap_or("viewer"))?,
    };
    if let Some(tenant) = &new.tenant
        && !state.auth.tenants(true).await?.contains(tenant)
    {
        return Err(AuthError::NotFound(format!("no tenant {tenant}")).into());
    }
    let actor = caller.actor();
    let password = random_password();
    let user = state
        .auth
        .create_user(&actor, &new.email, &new.name, &password, new.global_admin)
        .await?;
    if let Some(tenant) = &new.tenant {
        state.auth.grant(&actor, user.id, tenant, role).await?;
    }
    let user = api_user(&state, user).await?;
    Ok((StatusCode::CREATED, Json(CreatedUser { user, password })))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = ApiUser), (status = 403, body = super::Error),
        (status = 404, body = super::Error)))]
async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ApiUser>, ApiError> {
    let id = user_id(&id)?;
    let user = state.auth.user(id).await?;
    Ok(Json(api_user(&state, user).await?))
}

async fn set_disabled(
    state: &AppState,
    caller: &Caller,
    id: i64,
    disabled: bool,
) -> Result<Json<ApiUser>, ApiError> {
    if disabled && caller.principal()?.user_id() == Some(id) {
        return Err(AuthError::Invalid("you cannot disable yourself".into()).into());
    }
    state
        .auth
        .set_disabled(&caller.actor(), id, disabled)
        .await?;
    Ok(Json(api_user(state, state.auth.user(id).await?).await?))
}

/// Disables a user; their sessions end at once. The last enabled global admin stays enabled.
#[utoipa::path(post, path = "/api/v1/users/{id}/disable", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = ApiUser), (status = 400, body = super::Error),
        (status = 403, body = super::Error), (status = 404, body = super::Error),
        (status = 409, body = super::Error, description = "The last enabled global admin")))]
async fn disable(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ApiUser>, ApiError> {
    let id = user_id(&id)?;
    set_disabled(&state, &caller, id, true).await
}

/// Enables a disabled user.
#[utoipa::path(post, path = "/api/v1/users/{id}/enable", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = ApiUser), (status = 403, body = super::Error),
        (status = 404, body = super::Error)))]
async fn enable(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ApiUser>, ApiError> {
    let id = user_id(&id)?;
    set_disabled(&state, &caller, id, false).await
}

/// A generated password, shown once.
#[derive(Serialize, ToSchema)]
pub struct NewPassword {
    pub password: String,
}

/// Gives the user a new generated password (shown once); their sessions end.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = NewPassword), (status = 403, body = super::Error),
        (status = 404, body = super::Error)))]
async fn new_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<NewPassword>, ApiError> {
    let id = user_id(&id)?;
    let password = random_password();
    state
        .auth
        .set_password(&caller.actor(), id, &password)
        .await?;
    Ok(Json(NewPassword { password }))
}

/// Removes the user's authenticator (they enrol again at next sign-in if MFA is required).
#[utoipa::path(delete, path = "/api/v1/users/{id}/mfa", tag = "users", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = super::Error),
        (status = 404, body = super::Error)))]
async fn remove_mfa(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = user_id(&id)?;
    state.auth.reset_mfa(&caller.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GlobalAdmin {
    pub global_admin: bool,
}

/// Makes the user a global admin or takes it away (the last enabled one keeps it: 409).
#[utoipa::path(put, path = "/api/v1/users/{id}/admin", tag = "users", params(("id" = i64, Path)),
    request_body = GlobalAdmin,
    responses((status = 200, body = ApiUser), (status = 400, body = super::Error),
        (status = 403, body = super::Error), (status = 404, body = super::Error),
        (status = 409, body = super::Error)))]
async fn set_admin(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ApiUser>, ApiError> {
    let id = user_id(&id)?;
    let wanted: GlobalAdmin = json_body(&body, "{\"global_admin\": true|false}")?;
    let user = state
        .auth
        .set_global_admin(&caller.actor(), id, wanted.global_admin)
        .await?;
    Ok(Json(api_user(&state, user).await?))
}
