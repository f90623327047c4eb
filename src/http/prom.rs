//! `POST /api/v1/tenants/{tenant}/prom/write`: Prometheus remote write 1.0 and 2.0
//! (snappy-compressed protobuf; 2.0 by `Content-Type: …;proto=io.prometheus.write.v2.Request`,
//! answered with the `X-Prometheus-Remote-Write-*-Written` counts), for
//! `remote_write: [{url: …, authorization: {credentials: <key>}}]`. Answered as the
//! remote-write spec asks: `204` once every sample is in the fsync'd WAL, `400` for data
//! that will never be accepted (Prometheus drops it instead of retrying), `5xx`/`429` only
//! for what a retry can fix.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::access::{Access, Route};
use super::{ApiError, AppState};
use crate::auth::Need;
use crate::ingest::prom::{Version, decode_remote_write, unsnappy};
use crate::ingest::{Limits, Source, Validated};

pub fn routes() -> Vec<Route> {
    vec![Route::post(
        "/api/v1/tenants/{tenant}/prom/write",
        Access::Tenant(Need::Ingest),
        remote_write,
    )]
}

/// Prometheus remote write 1.0 or 2.0.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/prom/write", tag = "write",
    params(("tenant" = String, Path)),
    request_body(description = "Prometheus remote write 1.0 or 2.0: snappy-compressed protobuf", content = crate::http::api::Binary, content_type = "application/x-protobuf"),
    responses((status = 204, description = "Every sample is in the fsync'd WAL"), (status = 400, body = crate::http::api::Error),
        (status = 415, body = crate::http::api::Error)))]
async fn remote_write(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let version = Version::from_content_type(content_type).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "unsupported remote-write message {content_type:?}: send prometheus.WriteRequest \
             (1.0) or io.prometheus.write.v2.Request (2.0)"
        ))
    })?;
    let limit = state.config.ingest.max_body_bytes;
    let body = body.map_err(|rejection| ApiError::body(rejection, limit))?;
    let tenant = state.tenant(&tenant).await?;
    let limits = Limits::from(&state.config.ingest);
    let source = Source {
        protocol: "remote_write",
        body_bytes: body.len(),
    };
    let (checked, written) = tokio::task::spawn_blocking(move || {
        let request = unsnappy(&body, limit)?;
        decode_remote_write(&tenant, request, version, limits)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("decoder task failed: {e}")))??;
    Validated::append_all(checked, source).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if version == Version::V2 {
        // 2.0 senders count what was stored from these; histograms and exemplars are not.
        let headers = response.headers_mut();
        headers.insert(
            "x-prometheus-remote-write-samples-written",
            written.samples.into(),
        );
        headers.insert("x-prometheus-remote-write-histograms-written", 0.into());
        headers.insert("x-prometheus-remote-write-exemplars-written", 0.into());
    }
    Ok(response)
}
