//! `GET /api/v1/tenants/{tenant}/panels/{panel}/data` (the panel type's JSON) and
//! `/panels/{panel}/image` (a custom_image panel's picture) and `/panels/{panel}/export`
//! (the rows behind it, streamed).

use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::access::{Access, Caller, Route};
use super::panel_query::PanelQuery;
use super::query::{audited, encoded_body};
use super::{ApiError, AppState};
use crate::auth::{AuditEvent, Need};
use crate::panels::PanelAnswer;
use crate::query::QueryOutput;
use crate::render::ExportFormat;
use crate::usage::{Counter, TenantUsage};

pub fn routes() -> Vec<Route> {
    let read = Access::Tenant(Need::Read);
    vec![
        Route::get("/api/v1/tenants/{tenant}/panels/{panel}/data", read, data),
        Route::get("/api/v1/tenants/{tenant}/panels/{panel}/image", read, image),
        Route::get(
            "/api/v1/tenants/{tenant}/panels/{panel}/export",
            read,
            export,
        ),
    ]
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

/// A panel's answer for a range and variables, as its type's JSON.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/panels/{panel}/data", tag = "dashboards",
    params(("tenant" = String, Path), ("panel" = String, Path), ("from" = Option<String>, Query), ("to" = Option<String>, Query),
        ("dashboard" = Option<String>, Query), ("max_points" = Option<u32>, Query)),
    responses((status = 200, body = Object, description = "The panel type's answer"), (status = 400, body = crate::http::api::Error),
        (status = 404, body = crate::http::api::Error), (status = 422, body = crate::http::api::Error)))]
async fn data(
    State(state): State<AppState>,
    Path((tenant, panel)): Path<(String, String)>,
    PanelQuery(request): PanelQuery,
) -> Result<Response, ApiError> {
    state.tenant_for_query(&tenant).await?;
    let data = state
        .panels
        .data(&tenant, &panel, &request, now_ns())
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], data.json()).into_response())
}

/// A custom_image panel's picture.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/panels/{panel}/image", tag = "dashboards",
    params(("tenant" = String, Path), ("panel" = String, Path), ("from" = Option<String>, Query), ("to" = Option<String>, Query)),
    responses((status = 200, description = "A custom_image panel's picture",
        content((crate::http::api::Binary = "image/png"), (String = "image/svg+xml"))),
        (status = 400, body = crate::http::api::Error), (status = 404, body = crate::http::api::Error), (status = 422, body = crate::http::api::Error)))]
async fn image(
    State(state): State<AppState>,
    Path((tenant, panel)): Path<(String, String)>,
    PanelQuery(request): PanelQuery,
) -> Result<Response, ApiError> {
    state.tenant_for_query(&tenant).await?;
    let data = state
        .panels
        .data(&tenant, &panel, &request, now_ns())
        .await?;
    let PanelAnswer::CustomImage(image) = &data.answer else {
        return Err(ApiError::BadRequest(format!(
            "panel `{panel}` is not a custom_image panel"
        )));
    };
    Ok((
        [(header::CONTENT_TYPE, image.content_type.clone())],
        image.bytes.clone(),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct ExportParams {
    format: Option<String>,
    /// `keep`: CSV cells as written, formulas included (default `quote`).
    csv_formulas: Option<String>,
}

/// The rows behind the panel as CSV, JSON, NDJSON, Parquet or Arrow, streamed batch by batch,
/// as an attachment named `{tenant}-{panel}-{from}-{to}.{ext}`.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/panels/{panel}/export", tag = "dashboards",
    params(("tenant" = String, Path), ("panel" = String, Path), ("format" = Option<String>, Query), ("from" = Option<String>, Query), ("to" = Option<String>, Query)),
    responses((status = 200, description = "Every row behind the panel, streamed as an attachment",
        content((Object = "application/json"), (String = "application/x-ndjson"), (String = "text/csv"),
            (crate::http::api::Binary = "application/vnd.apache.arrow.stream"), (crate::http::api::Binary = "application/vnd.apache.parquet"))),
        (status = 400, body = crate::http::api::Error), (status = 404, body = crate::http::api::Error)))]
async fn export(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, panel)): Path<(String, String)>,
    Query(format): Query<ExportParams>,
    PanelQuery(request): PanelQuery,
) -> Result<Response, ApiError> {
    let format: ExportFormat = (format
        .format
        .as_deref()
        .unwrap_or("csv")
        .parse::<ExportFormat>())?
    .with_csv_formulas(format.csv_formulas.as_deref())?;
    let store = state.tenant_for_query(&tenant).await?;
    let recheck = super::streams::Recheck::new(&state, &caller, &tenant, true)?;
    let (output, stem) = state
        .panels
        .export(&tenant, &panel, &request, now_ns())
        .await?;
    let output = super::query::rechecked(output, recheck);
    let output = counted_rows(output, store.usage().clone());
    let event = AuditEvent::ok(
        "export",
        json!({"panel": panel, "format": format.extension(), "from": request.from, "to": request.to,
               "disable_aggregation": request.disable_aggregation, "vars": request.vars}),
    )
    .in_tenant(&tenant);
    let output = audited(output, &state, &caller, event);
    let body = counted_bytes(encoded_body(format, output).await?, store.usage().clone());
    let disposition = format!("attachment; filename=\"{stem}.{}\"", format.extension());
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// The export's rows, counted into the tenant's usage as they are encoded.
fn counted_rows(output: QueryOutput, usage: Arc<TenantUsage>) -> QueryOutput {
    let stream = output.stream.inspect(move |batch| {
        if let Ok(batch) = batch {
            usage.add(Counter::ExportRows, batch.num_rows() as u64);
        }
    });
    QueryOutput {
        schema: output.schema,
        stream: Box::pin(stream),
    }
}

/// The export's bytes, counted into the tenant's usage as they are sent.
fn counted_bytes(body: Body, usage: Arc<TenantUsage>) -> Body {
    Body::from_stream(body.into_data_stream().inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            usage.add(Counter::ExportBytes, chunk.len() as u64);
        }
    }))
}
