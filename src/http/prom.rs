//! `POST /api/v1/tenants/{tenant}/prom/write`: Prometheus remote write 1.0 (snappy-compressed
//! protobuf), for `remote_write: [{url: …, authorization: {credentials: <key>}}]`. Answered as
//! the remote-write spec asks: `204` once every sample is in the fsync'd WAL, `400` for data
//! that will never be accepted (Prometheus drops it instead of retrying), `5xx`/`429` only
//! for what a retry can fix.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::access::{Access, Route};
use super::{ApiError, AppState};
use crate::auth::Need;
use crate::ingest::prom::{decode_remote_write, unsnappy};
use crate::ingest::{Limits, Validated};

pub fn routes() -> Vec<Route> {
    vec![Route::post(
        "/api/v1/tenants/{tenant}/prom/write",
        Access::Tenant(Need::Ingest),
        remote_write,
    )]
}

async fn remote_write(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let limit = state.config.ingest.max_body_bytes;
    let body = body.map_err(|rejection| ApiError::body(rejection, limit))?;
    let tenant = state.tenant(&tenant).await?;
    let limits = Limits::from(&state.config.ingest);
    let checked = tokio::task::spawn_blocking(move || {
        let request = unsnappy(&body, limit)?;
        decode_remote_write(&tenant, &request, limits)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("decoder task failed: {e}")))??;
    Validated::append_all(checked).await?;
    Ok(StatusCode::NO_CONTENT)
}
