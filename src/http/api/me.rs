//! `GET /api/v1/me`: who the caller is (a signed-in user or an API key) and what it may do in
//! each tenant, so a script can check its credentials before it starts.

use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::super::access::{Access, Caller, Route};
use super::super::{ApiError, AppState};
use crate::auth::{Need, PrincipalKind};

pub fn routes() -> Vec<Route> {
    vec![Route::get("/api/v1/me", Access::SignedIn, me)]
}

/// The caller.
#[derive(Serialize, ToSchema)]
pub struct Me {
    /// `user` (a session) or `key` (an API key).
    #[schema(example = "user")]
    pub kind: String,
    /// The user's id, or the key's id.
    pub id: String,
    /// The user's email; absent for keys.
    pub email: Option<String>,
    /// A key's scopes; empty for users (their roles say what they may do).
    pub scopes: Vec<String>,
    /// Whether the caller may administer every tenant and the users.
    pub global_admin: bool,
    /// Each tenant the caller can reach, with what it may do there.
    pub tenants: Vec<TenantAccess>,
}

/// What the caller may do in one tenant.
#[derive(Serialize, ToSchema)]
pub struct TenantAccess {
    pub tenant: String,
    /// The user's role there (`viewer`, `editor`, `admin`); absent for keys and for global
    /// admins without a membership.
    pub role: Option<String>,
    /// Of `read`, `ingest`, `act`, `run`, `manage`: the needs the caller meets there.
    pub may: Vec<String>,
}

const NEEDS: [(Need, &str); 5] = [
    (Need::Read, "read"),
    (Need::Ingest, "ingest"),
    (Need::Act, "act"),
    (Need::Run, "run"),
    (Need::Manage, "manage"),
];

/// Who the caller is and what it may do.
#[utoipa::path(get, path = "/api/v1/me", tag = "account",
    responses((status = 200, body = Me), (status = 401, body = super::Error)))]
async fn me(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Me>, ApiError> {
    let principal = caller.principal()?;
    let tenants = state.auth.tenants(true).await?;
    let (kind, id, email, scopes, roles) = match &principal.kind {
        PrincipalKind::User {
            id, email, roles, ..
        } => (
            "user",
            id.to_string(),
            Some(email.clone()),
            vec![],
            roles.clone(),
        ),
        PrincipalKind::Key { id, scopes, .. } => (
            "key",
            id.clone(),
            None,
            scopes.iter().map(|s| s.as_str().to_string()).collect(),
            Default::default(),
        ),
    };
    let tenants = tenants
        .into_iter()
        .filter_map(|tenant| {
            let may: Vec<String> = NEEDS
                .iter()
                .filter(|(need, _)| principal.allows(&tenant, *need))
                .map(|(_, name)| name.to_string())
                .collect();
            let role = roles.get(&tenant).map(|r| r.as_str().to_string());
            (!may.is_empty()).then_some(TenantAccess { tenant, role, may })
        })
        .collect();
    Ok(Json(Me {
        kind: kind.into(),
        id,
        email,
        scopes,
        global_admin: principal.is_global_admin(),
        tenants,
    }))
}
