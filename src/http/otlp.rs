//! OTLP/HTTP: `POST /api/v1/tenants/{tenant}/otlp/v1/metrics` and `…/otlp/v1/logs`, the paths
//! an OpenTelemetry SDK or collector appends to its endpoint
//! (`OTEL_EXPORTER_OTLP_ENDPOINT=http://host:port/api/v1/tenants/{tenant}/otlp`). Bodies are
//! protobuf or JSON (by `Content-Type`), optionally gzip-compressed; the answer uses the
//! request's encoding: `200` with an export response (carrying OTLP's `partial_success` when
//! points were left out) once every row is in the fsync'd WAL, or a `google.rpc.Status` body.
//! Logs go to the table `logs` unless `?table=` names another.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::access::{Access, Route};
use super::error::OtlpError;
use super::extract::{gunzip, is_gzip};
use super::{ApiError, AppState};
use crate::auth::Need;
use crate::ingest::otlp::{self, Encoding, Rejected};
use crate::ingest::{IngestError, Limits, Source, Validated};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/api/v1/tenants/{tenant}/otlp/v1/metrics",
            Access::Tenant(Need::Ingest),
            export_metrics,
        ),
        Route::post(
            "/api/v1/tenants/{tenant}/otlp/v1/logs",
            Access::Tenant(Need::Ingest),
            export_logs,
        ),
    ]
}

type Body = Result<Bytes, BytesRejection>;

/// OTLP/HTTP metrics export (protobuf or JSON), one table per metric.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/otlp/v1/metrics", tag = "write",
    params(("tenant" = String, Path)),
    request_body(description = "An OTLP ExportMetricsServiceRequest, protobuf or JSON, optionally gzip-compressed",
        content((crate::http::api::Binary = "application/x-protobuf"), (Object = "application/json"))),
    responses((status = 200, description = "An ExportMetricsServiceResponse in the request's encoding",
        content((crate::http::api::Binary = "application/x-protobuf"), (Object = "application/json"))),
        (status = "4XX", description = "Refused (bad data, too large, not protobuf or JSON, a quota); a google.rpc.Status in the request's encoding",
            content((crate::http::api::Binary = "application/x-protobuf"), (crate::http::api::OtlpStatus = "application/json"))),
        (status = "5XX", description = "A server fault, or the server cannot store now; a google.rpc.Status in the request's encoding",
            content((crate::http::api::Binary = "application/x-protobuf"), (crate::http::api::OtlpStatus = "application/json")))))]
async fn export_metrics(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OtlpError> {
    let encoding = encoding(&headers)?;
    let rejected = export(
        &state,
        &tenant,
        &headers,
        body,
        move |store, body, limits, now| otlp::metrics::decode(store, body, encoding, limits, now),
    )
    .await
    .map_err(|e| OtlpError(e, encoding))?;
    Ok(answer(
        otlp::metrics_response(&rejected, encoding),
        encoding,
    ))
}

/// OTLP/HTTP logs export (protobuf or JSON); rows go to `logs` or `?table=`.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/otlp/v1/logs", tag = "write",
    params(("tenant" = String, Path), ("table" = Option<String>, Query, description = "The table (default `logs`)")),
    request_body(description = "An OTLP ExportLogsServiceRequest, protobuf or JSON, optionally gzip-compressed",
        content((crate::http::api::Binary = "application/x-protobuf"), (Object = "application/json"))),
    responses((status = 200, description = "An ExportLogsServiceResponse in the request's encoding",
        content((crate::http::api::Binary = "application/x-protobuf"), (Object = "application/json"))),
        (status = "4XX", description = "Refused (bad data, too large, not protobuf or JSON, a quota); a google.rpc.Status in the request's encoding",
            content((crate::http::api::Binary = "application/x-protobuf"), (crate::http::api::OtlpStatus = "application/json"))),
        (status = "5XX", description = "A server fault, or the server cannot store now; a google.rpc.Status in the request's encoding",
            content((crate::http::api::Binary = "application/x-protobuf"), (crate::http::api::OtlpStatus = "application/json")))))]
async fn export_logs(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OtlpError> {
    let encoding = encoding(&headers)?;
    let table = params
        .get("table")
        .cloned()
        .unwrap_or_else(|| "logs".into());
    let rejected = export(
        &state,
        &tenant,
        &headers,
        body,
        move |store, body, limits, now| {
            otlp::logs::decode(store, body, encoding, &table, limits, now)
        },
    )
    .await
    .map_err(|e| OtlpError(e, encoding))?;
    Ok(answer(otlp::logs_response(&rejected, encoding), encoding))
}

type Decoded = Result<(Vec<Validated>, Rejected), IngestError>;

/// Inflates, decodes and checks off the async workers, then writes every table.
async fn export(
    state: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    body: Body,
    decode: impl FnOnce(&std::sync::Arc<crate::storage::TenantStore>, &[u8], Limits, i64) -> Decoded
    + Send
    + 'static,
) -> Result<Rejected, ApiError> {
    let limit = state.config.ingest.max_body_bytes;
    let body = body.map_err(|rejection| ApiError::body(rejection, limit))?;
    let gzip = is_gzip(headers);
    let source = Source {
        protocol: "otlp",
        body_bytes: body.len(),
    };
    let store = state.tenant(tenant).await?;
    let limits = Limits::from(&state.config.ingest);
    let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    let (checked, rejected) = tokio::task::spawn_blocking(move || {
        let body = if gzip { gunzip(&body, limit)? } else { body };
        decode(&store, &body, limits, now_ns).map_err(ApiError::from)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("decoder task failed: {e}")))??;
    Validated::append_all(checked, source).await?;
    Ok(rejected)
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, OtlpError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Encoding::from_content_type(content_type).ok_or_else(|| {
        let error = ApiError::UnsupportedMediaType(format!(
            "unsupported content type {content_type:?}: OTLP/HTTP sends application/x-protobuf or application/json"
        ));
        OtlpError(error, Encoding::Json)
    })
}

fn answer(body: Vec<u8>, encoding: Encoding) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response()
}
