//! `/api/v1/tenants/{tenant}/keys`: the tenant's API keys, as on its access page — list,
//! create (the secret is in the answer once and never again), rotate (a new key with the same
//! name, scopes and lifetime; the old one revoked) and revoke. A key is named by its id and
//! must be this tenant's, whatever the id says.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::access::{Access, Caller, Route};
use super::super::{ApiError, AppState};
use super::{json_body, rfc3339};
use crate::auth::{AuthError, KeyInfo, Need, NewKeyRequest, Scope};
use crate::config::HumanDuration;

pub fn routes() -> Vec<Route> {
    let manage = Access::Tenant(Need::Manage);
    vec![
        Route::get("/api/v1/tenants/{tenant}/keys", manage, list),
        Route::post("/api/v1/tenants/{tenant}/keys", manage, create),
        Route::post("/api/v1/tenants/{tenant}/keys/{id}/rotate", manage, rotate),
        Route::delete("/api/v1/tenants/{tenant}/keys/{id}", manage, revoke),
    ]
}

/// An API key (never its secret).
#[derive(Serialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// The key's tenant; absent for a global key.
    pub tenant: Option<String>,
    /// Of `ingest`, `read`, `act`, `admin`.
    pub scopes: Vec<String>,
    /// `active`, `expired` or `revoked`.
    #[schema(example = "active")]
    pub status: String,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

pub(super) fn api_key(k: KeyInfo, now_ms: i64) -> ApiKey {
    ApiKey {
        scopes: k.scopes.iter().map(|s| s.as_str().to_string()).collect(),
        status: k.status(now_ms).into(),
        created_at: rfc3339(k.created_at),
        expires_at: k.expires_at.map(rfc3339),
        last_used_at: k.last_used_at.map(rfc3339),
        revoked_at: k.revoked_at.map(rfc3339),
        id: k.id,
        name: k.name,
        tenant: k.tenant,
        created_by: k.created_by,
    }
}

/// A key just made: its secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    pub key: ApiKey,
    /// `opsb_<id>_<secret>`: send it as `Authorization: Bearer <secret>`.
    pub secret: String,
}

/// The tenant's keys, revoked and expired ones too.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/keys", tag = "keys",
    params(("tenant" = String, Path)),
    responses((status = 200, body = Vec<ApiKey>), (status = 404, body = super::Error)))]
async fn list(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<ApiKey>>, ApiError> {
    state.tenant(&tenant).await?;
    let now = state.auth.now_ms();
    let keys = state.auth.keys(Some(&tenant)).await?;
    Ok(Json(keys.into_iter().map(|k| api_key(k, now)).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    #[serde(default)]
    #[schema(example = "edge agents")]
    pub name: String,
    /// Of `ingest`, `read`, `act`, `admin`; at least one.
    #[schema(example = json!(["ingest"]))]
    pub scopes: Vec<String>,
    /// How long the key lives (`90d`, `12h`); forever when absent.
    #[schema(example = "90d")]
    pub expires_in: Option<String>,
}

/// Creates a key for the tenant; the answer carries its secret once.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/keys", tag = "keys",
    params(("tenant" = String, Path)), request_body = NewKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = super::Error),
        (status = 404, body = super::Error)))]
async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    state.tenant(&tenant).await?;
    create_key(&state, &caller, Some(tenant), &body).await
}

/// A key for `tenant` (none: a global key) from a [`NewKey`] body.
pub(super) async fn create_key(
    state: &AppState,
    caller: &Caller,
    tenant: Option<String>,
    body: &Bytes,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let new: NewKey = json_body(body, "{\"name\", \"scopes\": [\"ingest\"], \"expires_in\"}")?;
    let scopes = Scope::parse_list(&new.scopes.join(","))?;
    let now = state.auth.now_ms();
    let expires_at = match new.expires_in.as_deref() {
        None => None,
        Some(text) => {
            let d: HumanDuration = text
                .parse()
                .map_err(|e| AuthError::Invalid(format!("expires_in: {e}")))?;
            let ms = i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX);
            Some(now.saturating_add(ms))
        }
    };
    let request = NewKeyRequest {
        name: new.name,
        tenant,
        scopes,
        expires_at,
    };
    let (info, secret) = state.auth.create_key(&caller.actor(), request).await?;
    let key = api_key(info, now);
    Ok((StatusCode::CREATED, Json(CreatedKey { key, secret })))
}

/// The key `id` if it is this tenant's; otherwise the same 404 as for no key at all.
pub(in crate::http) async fn tenant_key(
    state: &AppState,
    tenant: &str,
    id: &str,
) -> Result<KeyInfo, ApiError> {
    state
        .auth
        .key(id)
        .await
        .ok()
        .filter(|k| k.tenant.as_deref() == Some(tenant))
        .ok_or_else(|| AuthError::NotFound(format!("no API key {id} in tenant {tenant}")).into())
}

/// Replaces the key: a new one with its name, scopes and lifetime (secret shown once); the old
/// one is revoked.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/keys/{id}/rotate", tag = "keys",
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 201, body = CreatedKey), (status = 404, body = super::Error),
        (status = 409, body = super::Error)))]
async fn rotate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    tenant_key(&state, &tenant, &id).await?;
    rotate_key(&state, &caller, &id).await
}

pub(super) async fn rotate_key(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let (info, secret) = state.auth.rotate_key(&caller.actor(), id).await?;
    let key = api_key(info, state.auth.now_ms());
    Ok((StatusCode::CREATED, Json(CreatedKey { key, secret })))
}

/// Revokes the key at once.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/keys/{id}", tag = "keys",
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = ApiKey), (status = 404, body = super::Error)))]
async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<ApiKey>, ApiError> {
    tenant_key(&state, &tenant, &id).await?;
    revoke_key(&state, &caller, &id).await
}

pub(super) async fn revoke_key(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Json<ApiKey>, ApiError> {
    state.auth.revoke_key(&caller.actor(), id).await?;
    let info = state.auth.key(id).await?;
    Ok(Json(api_key(info, state.auth.now_ms())))
}
