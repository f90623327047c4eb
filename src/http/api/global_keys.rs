//! `/api/v1/keys`: every API key, for global admins — list them all (each tenant's and the
//! global ones), create a global key (what `opsboard apikey create --global` makes), rotate or
//! revoke any key by its id.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::super::access::{Access, Caller, Route};
use super::super::{ApiError, AppState};
use super::keys::{ApiKey, CreatedKey, api_key, create_key, revoke_key, rotate_key};

pub fn routes() -> Vec<Route> {
    let admin = Access::GlobalAdmin;
    vec![
        Route::get("/api/v1/keys", admin, list),
        Route::post("/api/v1/keys", admin, create),
        Route::post("/api/v1/keys/{id}/rotate", admin, rotate),
        Route::delete("/api/v1/keys/{id}", admin, revoke),
    ]
}

/// Every key, revoked and expired ones too.
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys",
    responses((status = 200, body = Vec<ApiKey>)))]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<ApiKey>>, ApiError> {
    let now = state.auth.now_ms();
    let keys = state.auth.keys(None).await?;
    Ok(Json(keys.into_iter().map(|k| api_key(k, now)).collect()))
}

/// Creates a global key (it reaches every tenant its scopes allow); its secret is in the
/// answer once.
#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = super::keys::NewKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = super::Error)))]
async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    create_key(&state, &caller, None, &body).await
}

/// Replaces any key: a new one with its name, tenant, scopes and lifetime; the old one is
/// revoked.
#[utoipa::path(post, path = "/api/v1/keys/{id}/rotate", tag = "keys",
    params(("id" = String, Path)),
    responses((status = 201, body = CreatedKey), (status = 404, body = super::Error),
        (status = 409, body = super::Error)))]
async fn rotate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    rotate_key(&state, &caller, &id).await
}

/// Revokes any key at once.
#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path)),
    responses((status = 200, body = ApiKey), (status = 404, body = super::Error)))]
async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<ApiKey>, ApiError> {
    revoke_key(&state, &caller, &id).await
}
