//! The one place errors become HTTP responses: every module's error maps to a status here and
//! renders as `{"error": "...", "details": [...]}` for the API ([`ApiError`]) or as a page a
//! person can read, with the same status ([`PageError`]), or as OTLP clients read it
//! ([`OtlpError`]).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use crate::actions::ActionError;
use crate::alerts::AlertError;
use crate::auth::AuthError;
use crate::ingest::AttachmentError;
use crate::ingest::IngestError;
use crate::ingest::otlp::{Encoding, status_body};
use crate::panels::PanelError;
use crate::query::QueryError;
use crate::render::{RenderError, escape_html};
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Panel(#[from] PanelError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Quota(#[from] crate::usage::QuotaExceeded),
    #[error(transparent)]
    Alert(#[from] AlertError),
    #[error(transparent)]
    Attachment(#[from] AttachmentError),
    /// An action's own refusals; its panel, query and storage errors map as theirs.
    #[error(transparent)]
    Action(ActionError),
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("no route for {0}")]
    NotFound(String),
    #[error(
        "at most {limit} event streams per user at once (http.max_streams_per_user); close one first"
    )]
    TooManyStreams { limit: usize },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A write body that could not be read: too large for `limit`, or broken off.
    pub fn body(rejection: axum::extract::rejection::BytesRejection, limit: usize) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge { limit },
            _ => ApiError::BadRequest(format!("cannot read the request body: {rejection}")),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Ingest(IngestError::UnsupportedFormat(_)) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::Ingest(IngestError::Arrow(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Ingest(IngestError::Schema(e)) => storage_status(e),
            ApiError::Ingest(IngestError::Expired { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Ingest(IngestError::SystemTable(_)) => StatusCode::FORBIDDEN,
            ApiError::Ingest(_) => StatusCode::BAD_REQUEST,
            ApiError::Storage(e) | ApiError::Panel(PanelError::Storage(e)) => storage_status(e),
            ApiError::Query(QueryError::Timeout(_)) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Query(QueryError::Busy { .. }) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Query(e) if e.is_client_error() => StatusCode::BAD_REQUEST,
            ApiError::Query(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Render(RenderError::UnknownFormat(_) | RenderError::BadOption(_)) => {
                StatusCode::BAD_REQUEST
            }
            // A picture that cannot be read (or is too large to) for a thumbnail.
            ApiError::Render(RenderError::Image(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Panel(
                PanelError::Param(_)
                | PanelError::NotExportable { .. }
                | PanelError::Variable { .. },
            ) => StatusCode::BAD_REQUEST,
            ApiError::Panel(
                PanelError::NoConfig(_)
                | PanelError::UnknownPanel { .. }
                | PanelError::UnknownDashboard { .. },
            ) => StatusCode::NOT_FOUND,
            ApiError::Panel(PanelError::Query { source, .. }) => match source {
                QueryError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
                QueryError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
                // The panel's own SQL failed: a configuration fault, not the caller's.
                e if e.is_client_error() => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            // The panel's YAML (its template, or the columns its `sql:` returns) is at fault:
            // the operator's to fix, and the message names the file and line.
            ApiError::Panel(
                PanelError::Template { .. }
                | PanelError::Shape { .. }
                | PanelError::TooManySeries { .. }
                | PanelError::Picture { .. },
            ) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Panel(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Auth(e) => auth_status(e),
            ApiError::Alert(AlertError::NotFound(_)) => StatusCode::NOT_FOUND,
            ApiError::Alert(AlertError::Invalid(_)) => StatusCode::BAD_REQUEST,
            ApiError::Alert(AlertError::Storage(e)) => storage_status(e),
            ApiError::Alert(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyStreams { .. } | ApiError::Quota(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Action(e) => action_status(e),
            ApiError::Attachment(AttachmentError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Attachment(AttachmentError::Empty) => StatusCode::BAD_REQUEST,
            ApiError::Attachment(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl ApiError {
    /// Seconds to wait before trying again, for answers that have one.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Auth(
                AuthError::RateLimited { retry_after_secs }
                | AuthError::LockedOut { retry_after_secs },
            )
            | ApiError::Query(QueryError::Busy { retry_after_secs })
            | ApiError::Panel(PanelError::Query {
                source: QueryError::Busy { retry_after_secs },
                ..
            }) => Some(*retry_after_secs),
            ApiError::TooManyStreams { .. } => Some(60),
            ApiError::Quota(q) | ApiError::Storage(StorageError::Quota(q)) => {
                Some(q.retry_after_secs)
            }
            ApiError::Storage(StorageError::BuffersFull {
                retry_after_secs, ..
            }) => Some(*retry_after_secs),
            ApiError::Storage(
                StorageError::WalUnavailable { .. }
                | StorageError::WalLeaseLost
                | StorageError::Fenced { .. },
            ) => Some(2),
            _ => None,
        }
    }

    /// What the caller is told. A server fault's text may name files, queries or addresses: it
    /// goes to the log, and the caller gets an id to quote that finds it there.
    fn public_message(&self, status: StatusCode) -> String {
        if status.is_server_error() {
            let id = crate::auth::random_token()[..16].to_string();
            tracing::error!(status = status.as_u16(), request_id = %id, error = %self, "request failed");
            format!("internal error; request id {id}")
        } else {
            tracing::debug!(status = status.as_u16(), error = %self, "request rejected");
            self.to_string()
        }
    }
}

fn auth_status(e: &AuthError) -> StatusCode {
    match e {
        AuthError::Unauthenticated
        | AuthError::BadKey(_)
        | AuthError::BadCredentials
        | AuthError::MfaSessionEnded => StatusCode::UNAUTHORIZED,
        AuthError::BadMfaCode | AuthError::Invalid(_) => StatusCode::BAD_REQUEST,
        AuthError::LockedOut { .. } | AuthError::RateLimited { .. } => {
            StatusCode::TOO_MANY_REQUESTS
        }
        AuthError::Forbidden(_) | AuthError::SignInRefused(_) => StatusCode::FORBIDDEN,
        AuthError::NotFound(_) => StatusCode::NOT_FOUND,
        AuthError::Conflict(_) => StatusCode::CONFLICT,
        AuthError::Database(_) | AuthError::Db(_) | AuthError::Internal(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::Panel(e) => ApiError::Panel(e),
            ActionError::Query(e) => ApiError::Query(e),
            ActionError::Storage(e) => ApiError::Storage(e),
            ActionError::Ingest(e) => ApiError::Ingest(e),
            other => ApiError::Action(other),
        }
    }
}

fn action_status(e: &ActionError) -> StatusCode {
    match e {
        ActionError::UnknownAction { .. }
        | ActionError::NoSuchRow { .. }
        | ActionError::UnknownRun(_) => StatusCode::NOT_FOUND,
        ActionError::AdminOnly(_) => StatusCode::FORBIDDEN,
        ActionError::MissingKey { .. } | ActionError::Render { .. } => StatusCode::BAD_REQUEST,
        ActionError::Busy { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn storage_status(e: &StorageError) -> StatusCode {
    match e {
        StorageError::UnknownTenant { .. } => StatusCode::NOT_FOUND,
        StorageError::Quota(_) => StatusCode::TOO_MANY_REQUESTS,
        StorageError::ShuttingDown
        | StorageError::BuffersFull { .. }
        | StorageError::WalUnavailable { .. }
        | StorageError::WalLeaseLost
        | StorageError::Fenced { .. } => StatusCode::SERVICE_UNAVAILABLE,
        e if e.is_client_error() => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let details = match &self {
            ApiError::Ingest(
                IngestError::InvalidLines { details, .. } | IngestError::Expired { details, .. },
            ) => json!(details),
            _ => json!([]),
        };
        let message = self.public_message(status);
        let mut response = (
            status,
            Json(json!({ "error": message, "details": details })),
        )
            .into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ApiError::Auth(AuthError::Unauthenticated | AuthError::BadKey(_)) = &self {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// axum's own refusals — a path or query parameter that does not parse, a malformed body —
/// are plain text; on `/api/` routes they become the JSON `{"error", "details"}` every other
/// API error is (schemathesis found the plain-text ones).
pub async fn api_refusals_as_json(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let plain_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !api || !plain_text || !response.status().is_client_error() {
        return response;
    }
    let (parts, body) = response.into_parts();
    // axum's rejection texts are a line or two; anything longer is cut.
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&text).trim().to_string();
    let mut json = (
        parts.status,
        Json(json!({ "error": message, "details": [] })),
    )
        .into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    json
}

/// An OTLP export that failed: the API's status (and `Retry-After`), the body a
/// `google.rpc.Status` in the request's encoding, as OTLP/HTTP clients read it.
pub struct OtlpError(pub ApiError, pub Encoding);

impl IntoResponse for OtlpError {
    fn into_response(self) -> Response {
        let OtlpError(error, encoding) = self;
        let status = error.status();
        let mut message = error.public_message(status);
        // OTLP clients log only the message: carry the first problems in it.
        if let ApiError::Ingest(IngestError::InvalidLines { details, .. }) = &error {
            for d in details.iter().take(3) {
                let column = d.column.as_deref().unwrap_or("-");
                message.push_str(&format!(
                    "; data point {} ({column}): {}",
                    d.line, d.message
                ));
            }
        }
        let body = status_body(status.as_u16(), &message, encoding);
        let mut response = (
            status,
            [(header::CONTENT_TYPE, encoding.content_type())],
            body,
        )
            .into_response();
        if let Some(secs) = error.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A page that failed: the status the API would give for the same error, as an HTML page a
/// person can read (the API's JSON stays for API routes).
pub struct PageError(ApiError);

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let message = self.0.public_message(status);
        let retry_after = self.0.retry_after();
        let html = format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{code} · opsboard</title>\n\
             <link rel=\"stylesheet\" href=\"/static/app.css\">\n</head>\n<body>\n<main>\n<h1>{code} {reason}</h1>\n\
             <p class=\"panel-error\">{message}</p>\n<p><a href=\"/\">All tenants</a></p>\n</main>\n</body>\n</html>\n",
            code = status.as_u16(),
            reason = status.canonical_reason().unwrap_or(""),
            message = escape_html(&message),
        );
        let mut response = (status, Html(html)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn server_faults_answer_a_request_id_not_their_text() {
        let fault = ApiError::Internal("cannot open /srv/secret/catalog.json".into());
        let response = fault.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = body(response).await;
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("internal error; request id "), "{text}");
        let page = PageError::from(ApiError::Internal("/srv/secret".into())).into_response();
        let text = body(page).await;
        assert!(
            !text.contains("secret") && text.contains("request id"),
            "{text}"
        );
        // A caller's mistake keeps its message: it is theirs to fix.
        let mistake = ApiError::BadRequest("`from` must be before `to`".into()).into_response();
        assert!(body(mistake).await.contains("must be before"));
    }
}
