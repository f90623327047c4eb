//! Line-protocol writes, on opsboard's own path and on the paths InfluxDB clients already use:
//! `POST /api/v1/tenants/{tenant}/write_lp`, `/api/v2/write?bucket=`, `/write?db=` (1.x) and
//! `/api/v3/write_lp?db=`, the tenant standing for the bucket or database. Bodies may be
//! gzip-compressed. Answered `204` like InfluxDB, once every row is in the fsync'd WAL; a bad
//! line or a type conflict writes nothing and answers `400` with the line numbers — unless
//! `?accept_partial=true`: then the other lines are written and the `400` (as InfluxDB 3 answers
//! a partial write) lists the lines left out.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;

use super::access::{Access, Route};
use super::extract::{gunzip, is_gzip};
use super::{ApiError, AppState};
use crate::auth::Need;
use crate::ingest::{Limits, Precision, Source, Validated, decode_lines};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/api/v1/tenants/{tenant}/write_lp",
            Access::Tenant(Need::Ingest),
            write_own,
        ),
        Route::post(
            "/api/v2/write",
            Access::TenantFrom(Need::Ingest, "bucket"),
            write_v2,
        ),
        Route::post("/write", Access::TenantFrom(Need::Ingest, "db"), write_v1),
        Route::post(
            "/api/v3/write_lp",
            Access::TenantFrom(Need::Ingest, "db"),
            write_v1,
        ),
    ]
}

type Params = Query<HashMap<String, String>>;
type Body = Result<Bytes, BytesRejection>;

/// Writes InfluxDB line protocol.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/write_lp", tag = "write",
    params(("tenant" = String, Path), ("precision" = Option<String>, Query), ("accept_partial" = Option<bool>, Query)),
    request_body(description = "InfluxDB line protocol, optionally gzip-compressed", content = String, content_type = "text/plain"),
    responses((status = 204, description = "Every line is in the fsync'd WAL"), (status = 400, body = crate::http::api::Error),
        (status = 413, body = crate::http::api::Error)))]
async fn write_own(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    write_lines(&state, &tenant, &params, &headers, body).await
}

async fn write_v2(
    State(state): State<AppState>,
    Query(params): Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = params.get("bucket").cloned().unwrap_or_default();
    write_lines(&state, &tenant, &params, &headers, body).await
}

/// InfluxDB 1.x `/write` and InfluxDB 3 `/api/v3/write_lp`: both name the database `db`.
async fn write_v1(
    State(state): State<AppState>,
    Query(params): Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = params.get("db").cloned().unwrap_or_default();
    write_lines(&state, &tenant, &params, &headers, body).await
}

async fn write_lines(
    state: &AppState,
    tenant: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let limit = state.config.ingest.max_body_bytes;
    let body = body.map_err(|rejection| ApiError::body(rejection, limit))?;
    let precision = precision(params.get("precision").map(String::as_str))?;
    let accept_partial = params.get("accept_partial").is_some_and(|v| v == "true");
    let gzip = is_gzip(headers);
    let source = Source {
        protocol: "line_protocol",
        body_bytes: body.len(),
    };
    let tenant = state.tenant(tenant).await?;
    let limits = Limits::from(&state.config.ingest);
    let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    // Decompressing and parsing are CPU work; keep them off the async workers.
    let checked = tokio::task::spawn_blocking(move || {
        let body = if gzip { gunzip(&body, limit)? } else { body };
        decode_lines(&tenant, &body, precision, limits, now_ns, accept_partial)
            .map_err(ApiError::from)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("decoder task failed: {e}")))??;
    let (checked, refused) = checked;
    // Every measurement was checked before the first is written.
    let rows_written = Validated::append_all(checked, source).await?;
    if refused.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let details: Vec<_> = refused
        .iter()
        .map(|(line, message)| json!({"line": line, "message": message}))
        .collect();
    let body = json!({
        "error": format!("partial write: {} line(s) left out, the others written", refused.len()),
        "rows_written": rows_written,
        "details": details,
    });
    Ok((StatusCode::BAD_REQUEST, Json(body)).into_response())
}

/// The precision names of InfluxDB 1.x (`n`, `u`), 2.x (`ns`, `us`) and 3 (`nanosecond`, …);
/// nanoseconds when absent, as in InfluxDB.
fn precision(name: Option<&str>) -> Result<Precision, ApiError> {
    Ok(match name.unwrap_or("ns") {
        "n" | "ns" | "nanosecond" => Precision::Nanoseconds,
        "u" | "us" | "microsecond" => Precision::Microseconds,
        "ms" | "millisecond" => Precision::Milliseconds,
        "s" | "second" => Precision::Seconds,
        other => {
            return Err(ApiError::BadRequest(format!(
                "invalid precision {other:?}: use ns, us, ms or s"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_influxdb_precision_name_is_understood() {
        for (name, expected) in [
            (None, Precision::Nanoseconds),
            (Some("n"), Precision::Nanoseconds),
            (Some("u"), Precision::Microseconds),
            (Some("us"), Precision::Microseconds),
            (Some("millisecond"), Precision::Milliseconds),
            (Some("s"), Precision::Seconds),
        ] {
            assert_eq!(precision(name).unwrap(), expected);
        }
        assert!(precision(Some("h")).is_err());
    }
}
