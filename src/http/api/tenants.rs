//! `/api/v1/tenants`: the tenants the caller can read, with their status and — where the caller
//! manages them — their usage and quotas; `/api/v1/tenants/{tenant}/usage` for one. Counters
//! are this node's since it started (as on `/metrics`); `rows_today` is across the nodes.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::super::access::{Access, Caller, Route};
use super::super::{ApiError, AppState};
use crate::auth::Need;
use crate::storage::TenantStore;
use crate::usage::Counter;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/api/v1/tenants", Access::SignedIn, list),
        Route::get(
            "/api/v1/tenants/{tenant}/usage",
            Access::Tenant(Need::Manage),
            usage,
        ),
    ]
}

/// A tenant as its caller sees it.
#[derive(Serialize, ToSchema)]
pub struct Tenant {
    pub name: String,
    /// `active`, or `inactive` once its folder is gone (data and members are kept).
    #[schema(example = "active")]
    pub status: String,
    /// The caller's role (users who are members).
    pub role: Option<String>,
    /// Problems in the tenant's newest configuration files (the last good one keeps serving
    /// meanwhile); `GET /api/v1/tenants/{tenant}/config/errors` lists them.
    pub config_errors: usize,
    /// Present where the caller manages the tenant.
    pub usage: Option<Usage>,
}

/// What a tenant used and may use.
#[derive(Serialize, ToSchema)]
pub struct Usage {
    /// Rows written today (UTC) across the nodes: what `quotas.rows_per_day` is checked against.
    pub rows_today: u64,
    /// Rows and request bytes written since this node started, per table and protocol.
    pub ingested: Vec<Ingested>,
    /// This node's counters since it started: `queries`, `query_wall_us`, `query_cpu_us`,
    /// `scanned_bytes`, `panel_renders`, `export_rows`, `export_bytes`, `attachment_bytes`,
    /// `api_requests`.
    pub counters: BTreeMap<String, u64>,
    /// Bytes kept, as last measured (absent before the first metering pass).
    pub stored_bytes: Option<Stored>,
    pub quotas: Quotas,
    /// Requests refused per quota since this node started.
    pub refusals: BTreeMap<String, u64>,
}

#[derive(Serialize, ToSchema)]
pub struct Ingested {
    pub table: String,
    #[schema(example = "line_protocol")]
    pub protocol: String,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Stored {
    pub parquet: u64,
    pub wal: u64,
    pub attachments: u64,
    pub total: u64,
}

/// The limits from tenant.yaml (`quotas:`); absent means unlimited.
#[derive(Serialize, ToSchema)]
pub struct Quotas {
    pub rows_per_day: Option<u64>,
    pub storage_bytes: Option<u64>,
    pub queries_per_minute: Option<u64>,
}

fn usage_of(tenant: &TenantStore) -> Usage {
    let usage = tenant.usage();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let quotas = tenant.quotas();
    Usage {
        rows_today: usage.rows_today(now_ms),
        ingested: usage
            .ingestion()
            .into_iter()
            .map(|((table, protocol), n)| Ingested {
                table,
                protocol: protocol.to_string(),
                rows: n.rows,
                bytes: n.bytes,
            })
            .collect(),
        counters: Counter::ALL
            .iter()
            .map(|c| (c.name().to_string(), usage.get(*c)))
            .collect(),
        stored_bytes: usage.stored().map(|s| Stored {
            parquet: s.parquet,
            wal: s.wal,
            attachments: s.attachments,
            total: s.total(),
        }),
        quotas: Quotas {
            rows_per_day: quotas.rows_per_day,
            storage_bytes: quotas.storage_bytes,
            queries_per_minute: quotas.queries_per_minute,
        },
        refusals: usage
            .refusals()
            .into_iter()
            .map(|(kind, n)| (kind.name().to_string(), n))
            .collect(),
    }
}

/// The tenants the caller can read (global admins: every tenant, inactive ones too).
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants",
    responses((status = 200, body = Vec<Tenant>)))]
async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<Tenant>>, ApiError> {
    let principal = caller.principal()?;
    let active = state.auth.tenants(true).await?;
    let all = if principal.is_global_admin() {
        state.auth.tenants(false).await?
    } else {
        active.clone()
    };
    let roles = match principal.user_id() {
        Some(id) => state.auth.roles(id).await?,
        None => BTreeMap::new(),
    };
    let mut tenants = vec![];
    for name in all {
        let is_active = active.contains(&name);
        if is_active && !principal.allows(&name, Need::Read) {
            continue;
        }
        let usage = match is_active && principal.allows(&name, Need::Manage) {
            true => state.store.tenant(&name).await.ok().map(|t| usage_of(&t)),
            false => None,
        };
        let config_errors = state
            .configs
            .problems(&name)
            .map_or(0, |(problems, _)| problems.len());
        tenants.push(Tenant {
            status: if is_active { "active" } else { "inactive" }.into(),
            config_errors,
            role: roles.get(&name).map(|r| r.as_str().to_string()),
            usage,
            name,
        });
    }
    Ok(Json(tenants))
}

/// The tenant's usage and quotas.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/usage", tag = "tenants",
    params(("tenant" = String, Path)),
    responses((status = 200, body = Usage), (status = 404, body = super::Error)))]
async fn usage(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Usage>, ApiError> {
    let tenant = state.tenant(&tenant).await?;
    Ok(Json(usage_of(&tenant)))
}
