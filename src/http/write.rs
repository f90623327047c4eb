//! `POST /api/v1/tenants/{tenant}/write/{table}`: JSON array, NDJSON or CSV rows in; answered
//! 200 only once the rows are in the fsync'd WAL.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};

use super::access::{Access, Route};
use super::{ApiError, AppState};
use crate::auth::Need;
use crate::ingest::{Format, Limits, OnExpired, Precision, Source, Write};

pub fn routes() -> Vec<Route> {
    vec![Route::post(
        "/api/v1/tenants/{tenant}/write/{table}",
        Access::Tenant(Need::Ingest),
        write,
    )]
}

#[derive(Debug, Deserialize)]
struct WriteParams {
    precision: Option<String>,
    /// `refuse` (default) or `drop` rows older than the table's retention.
    on_expired: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct WriteResponse {
    rows_written: usize,
    /// Rows past the table's retention left out (`on_expired=drop` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    rows_dropped: Option<usize>,
}

/// Writes rows (JSON array, NDJSON or CSV) into a table.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/write/{table}", tag = "write",
    params(("tenant" = String, Path), ("table" = String, Path), ("precision" = Option<String>, Query, description = "`ns`, `us`, `ms` or `s` for numeric times"),
        ("on_expired" = Option<String>, Query, description = "`refuse` (default) or `drop` rows older than the table's retention")),
    request_body(description = "A JSON array of rows, NDJSON or CSV (by `Content-Type`)",
        content((String = "application/json"), (String = "application/x-ndjson"), (String = "text/csv"))),
    responses((status = 200, body = WriteResponse, description = "Every row is in the fsync'd WAL"),
        (status = 400, body = crate::http::api::Error), (status = 413, body = crate::http::api::Error), (status = 415, body = crate::http::api::Error)))]
async fn write(
    State(state): State<AppState>,
    Path((tenant, table)): Path<(String, String)>,
    Query(params): Query<WriteParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<WriteResponse>, ApiError> {
    let limit = state.config.ingest.max_body_bytes;
    let body = body.map_err(|rejection| ApiError::body(rejection, limit))?;
    let tenant = state.tenant(&tenant).await?;
    let on_expired: OnExpired = params.on_expired.as_deref().unwrap_or("").parse()?;
    let limits = Limits::from(&state.config.ingest);
    let mut write = Write::to(tenant, &table, limits)?.on_expired(on_expired);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let format = Format::from_content_type(content_type)?;
    let precision: Precision = params.precision.as_deref().unwrap_or("ms").parse()?;
    let source = Source {
        protocol: format.name(),
        body_bytes: body.len(),
    };
    // Decoding a large body is CPU work; keep it off the async workers.
    let checked = tokio::task::spawn_blocking(move || {
        write
            .decode(format, &body, precision)
            .map(|_| write.validated())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("decoder task failed: {e}")))??;
    let dropped = checked.dropped();
    let rows_written = checked.append_from(source).await?;
    Ok(Json(WriteResponse {
        rows_written,
        rows_dropped: (on_expired == OnExpired::Drop).then_some(dropped),
    }))
}
