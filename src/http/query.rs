//! `POST /api/v1/tenants/{tenant}/query`: read-only SQL, results streamed in the requested
//! format. The first batch is computed before the status line goes out, so planning and most
//! execution errors still get a proper 4xx; a failure later cuts the stream short.

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::access::{Access, Caller, Route};
use super::{ApiError, AppState};
use crate::auth::{AuditEvent, Need};
use crate::query::{BatchStream, QueryError, QueryOutput};
use crate::render::{Encoder, ExportFormat};

pub fn routes() -> Vec<Route> {
    vec![Route::post(
        "/api/v1/tenants/{tenant}/query",
        Access::Tenant(Need::Read),
        query,
    )]
}

#[derive(Debug, Deserialize)]
struct QueryParams {
    format: Option<String>,
    /// `keep`: CSV cells as written, formulas included (default `quote`).
    csv_formulas: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    sql: String,
}

/// Read-only SQL over the tenant's tables, streamed in the asked format.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/query", tag = "query",
    params(("tenant" = String, Path), ("format" = Option<String>, Query, description = "`json` (default), `ndjson`, `csv`, `arrow` or `parquet`"),
        ("csv_formulas" = Option<String>, Query, description = "`keep`: CSV cells as written (default `quote`)")),
    request_body(content = QueryRequest, description = "Read-only SQL over the tenant's tables"),
    responses((status = 200, description = "The rows, streamed in the asked format",
        content((Object = "application/json"), (String = "application/x-ndjson"), (String = "text/csv"),
            (crate::http::api::Binary = "application/vnd.apache.arrow.stream"), (crate::http::api::Binary = "application/vnd.apache.parquet"))),
        (status = 400, body = crate::http::api::Error), (status = 408, body = crate::http::api::Error)))]
async fn query(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
    Query(params): Query<QueryParams>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Any content type: `curl -d` labels a JSON body as a form.
    let request: QueryRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!("expected a JSON body {{\"sql\": \"...\"}}: {e}"))
    })?;
    let format: ExportFormat = params.format.as_deref().unwrap_or("json").parse()?;
    let format = format.with_csv_formulas(params.csv_formulas.as_deref())?;
    let tenant = state.tenant_for_query(&tenant).await?;
    // Downloads in file formats are exports: each takes one of the caller's stream places.
    let download = !matches!(format, ExportFormat::Json | ExportFormat::Ndjson);
    let recheck = super::streams::Recheck::new(&state, &caller, &tenant.name, download)?;
    let output = state.engine.execute(&tenant, &request.sql).await?;
    let output = rechecked(output, recheck);
    // Exports are audited with their row count.
    let output = if !download {
        output
    } else {
        let event = AuditEvent::ok(
            "export",
            json!({"query": request.sql, "format": format.extension()}),
        )
        .in_tenant(&tenant.name);
        audited(output, &state, &caller, event)
    };
    let body = encoded_body(format, output).await?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

/// The output with its rows counted; when the stream is dropped (finished, failed or cut off by
/// the client) the audit log gets `event` with `rows` and `complete` added.
pub(super) fn audited(
    output: QueryOutput,
    state: &AppState,
    caller: &Caller,
    event: AuditEvent,
) -> QueryOutput {
    struct Tally {
        rows: u64,
        complete: bool,
        report: Option<(
            AuditEvent,
            std::sync::Arc<crate::auth::Auth>,
            crate::auth::Actor,
        )>,
    }
    impl Drop for Tally {
        fn drop(&mut self) {
            if let Some((mut event, auth, actor)) = self.report.take() {
                event.details["rows"] = json!(self.rows);
                event.details["complete"] = json!(self.complete);
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move { auth.audit(&actor, event).await });
                }
            }
        }
    }
    let mut tally = Tally {
        rows: 0,
        complete: false,
        report: Some((event, state.auth.clone(), caller.actor())),
    };
    let mut inner = output.stream;
    let stream = futures::stream::poll_fn(move |cx| {
        // The whole tally lives in the stream (not just its fields), so it drops with the body.
        let tally = &mut tally;
        let next = inner.as_mut().poll_next(cx);
        match &next {
            std::task::Poll::Ready(Some(Ok(batch))) => tally.rows += batch.num_rows() as u64,
            std::task::Poll::Ready(None) => tally.complete = true,
            _ => {}
        }
        next
    });
    QueryOutput {
        schema: output.schema,
        stream: Box::pin(stream),
    }
}

/// The output, ended with an error once its caller may no longer read it (see
/// [`super::streams`]).
pub(super) fn rechecked(output: QueryOutput, recheck: super::streams::Recheck) -> QueryOutput {
    let withdrawn = Err(QueryError::Execution {
        message: "access to the tenant was withdrawn during the answer".into(),
    });
    QueryOutput {
        schema: output.schema,
        stream: Box::pin(super::streams::rechecked(
            output.stream,
            recheck,
            Some(withdrawn),
        )),
    }
}

/// The result as a streamed body. The first batch is computed (and encoded) before the
/// response starts, so most errors can still become a 4xx.
pub(super) async fn encoded_body(
    format: ExportFormat,
    output: QueryOutput,
) -> Result<Body, ApiError> {
    let mut encoder = format.encoder(&output.schema)?;
    let mut stream = output.stream;
    let first = match stream.next().await {
        Some(batch) => encoder.batch(&batch?)?,
        None => vec![],
    };
    Ok(Body::from_stream(encode_rest(first, encoder, stream)))
}

/// The already-encoded first chunk, then each later batch, then the format's trailer.
fn encode_rest(
    first: Vec<u8>,
    encoder: Box<dyn Encoder>,
    stream: BatchStream,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let head = futures::stream::once(async move { Ok(Bytes::from(first)) });
    let rest = futures::stream::unfold(Some((encoder, stream)), |state| async move {
        let (mut encoder, mut stream) = state?;
        let chunk = match stream.next().await {
            Some(Ok(batch)) => encoder.batch(&batch).map_err(|e| e.to_string()),
            Some(Err(e)) => Err(e.to_string()),
            None => {
                return Some(match encoder.finish() {
                    Ok(tail) => (Ok(Bytes::from(tail)), None),
                    Err(e) => (Err(failed(e.to_string())), None),
                });
            }
        };
        match chunk {
            Ok(bytes) => Some((Ok(Bytes::from(bytes)), Some((encoder, stream)))),
            Err(message) => Some((Err(failed(message)), None)),
        }
    });
    head.chain(rest)
}

fn failed(message: String) -> std::io::Error {
    tracing::warn!(error = %message, "query failed while streaming; response cut short");
    std::io::Error::other(QueryError::Execution { message })
}
