//! Dashboards and the tenant's configuration state:
//! `GET /api/v1/tenants/{tenant}/dashboards` (list), `/dashboards/{name}` (resolved: each
//! entry's panel, type, title, grid placement and refresh interval) and `/config/errors`.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::access::{Access, Route};
use super::{ApiError, AppState};
use crate::auth::Need;
use crate::config::HumanDuration;
use crate::panels::PanelError;

pub fn routes() -> Vec<Route> {
    let read = Access::Tenant(Need::Read);
    vec![
        Route::get("/api/v1/tenants/{tenant}/dashboards", read, list),
        Route::get("/api/v1/tenants/{tenant}/dashboards/{name}", read, resolved),
        Route::get(
            "/api/v1/tenants/{tenant}/config/errors",
            read,
            config_errors,
        ),
    ]
}

/// The tenant's dashboards.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/dashboards", tag = "dashboards",
    params(("tenant" = String, Path)), responses((status = 200, body = Object), (status = 404, body = crate::http::api::Error)))]
async fn list(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.tenant(&tenant).await?;
    let config = state.panels.tenant_config(&tenant)?;
    let dashboards: Vec<Value> = config
        .dashboards
        .values()
        .map(|d| {
            json!({
                "name": d.name,
                "title": d.config.name,
                "description": d.config.description,
                "default": d.name == "default",
                "panels": d.config.panels.len(),
            })
        })
        .collect();
    Ok(Json(json!({ "tenant": tenant, "dashboards": dashboards })))
}

/// A dashboard resolved: each entry's panel, type, title, grid placement and refresh.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/dashboards/{name}", tag = "dashboards",
    params(("tenant" = String, Path), ("name" = String, Path)), responses((status = 200, body = Object), (status = 404, body = crate::http::api::Error)))]
async fn resolved(
    State(state): State<AppState>,
    Path((tenant, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    state.tenant(&tenant).await?;
    let config = state.panels.tenant_config(&tenant)?;
    let dashboard = config
        .dashboards
        .get(&name)
        .ok_or_else(|| PanelError::UnknownDashboard {
            tenant: tenant.clone(),
            dashboard: name.clone(),
        })?;
    let panels: Vec<Value> = dashboard
        .entries(&config.panels)
        .into_iter()
        .map(|entry| {
            let panel = &entry.panel;
            json!({
                "id": entry.id,
                "panel": panel.id,
                "type": panel.config.kind.name(),
                "title": panel.config.title,
                "description": panel.config.description,
                "position": entry.placement,
                "refresh_interval": entry.refresh.map(|d| d.0.as_secs()),
                "refresh_interval_text": entry.refresh.map(|d| d.to_string()),
                "drill_down": panel.config.drill_down,
                "data_url": format!("/api/v1/tenants/{tenant}/panels/{}/data", panel.id),
            })
        })
        .collect();
    Ok(Json(json!({
        "tenant": tenant,
        "name": dashboard.name,
        "title": dashboard.config.name,
        "description": dashboard.config.description,
        "refresh_interval": dashboard.config.refresh_interval.map(|d| d.0.as_secs()),
        "refresh_interval_text": dashboard.config.refresh_interval.map(|d: HumanDuration| d.to_string()),
        "layout": dashboard.config.layout,
        "panels": panels,
    })))
}

/// `{tenant, ok, errors: [{file, line, column, message}], checked_at}`; `ok` is false while
/// the newest files on disk are rejected (the last good configuration keeps serving).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/config/errors", tag = "dashboards",
    params(("tenant" = String, Path)), responses((status = 200, body = Object), (status = 404, body = crate::http::api::Error)))]
async fn config_errors(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.tenant(&tenant).await?;
    let (problems, checked_at) = state
        .configs
        .problems(&tenant)
        .ok_or_else(|| PanelError::NoConfig(tenant.clone()))?;
    let errors: Vec<Value> = problems
        .iter()
        .map(|p| {
            json!({
                "file": p.file.display().to_string(),
                "line": p.line,
                "column": p.column,
                "message": p.message,
                "text": p.to_string(),
            })
        })
        .collect();
    let checked_at = checked_at.map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339());
    Ok(Json(json!({
        "tenant": tenant,
        "ok": errors.is_empty(),
        "serving_last_good": state.configs.current(&tenant).is_some(),
        "errors": errors,
        "checked_at": checked_at,
    })))
}
