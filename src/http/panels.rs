//! `GET /api/v1/tenants/{tenant}/panels/{panel}/data` (the panel type's JSON) and
//! `/panels/{panel}/image` (a custom_image panel's picture).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, AppState};
use crate::panels::PanelRequest;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants/{tenant}/panels/{panel}/data", get(data))
        .route("/api/v1/tenants/{tenant}/panels/{panel}/image", get(image))
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

async fn data(
    State(state): State<AppState>,
    Path((tenant, panel)): Path<(String, String)>,
    Query(request): Query<PanelRequest>,
) -> Result<Response, ApiError> {
    let data = state
        .panels
        .data(&tenant, &panel, &request, now_ns())
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        data.json.clone(),
    )
        .into_response())
}

async fn image(
    State(state): State<AppState>,
    Path((tenant, panel)): Path<(String, String)>,
    Query(request): Query<PanelRequest>,
) -> Result<Response, ApiError> {
    let data = state
        .panels
        .data(&tenant, &panel, &request, now_ns())
        .await?;
    let (content_type, bytes) = data.image.clone().ok_or_else(|| {
        ApiError::BadRequest(format!("panel `{panel}` is not a custom_image panel"))
    })?;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}
