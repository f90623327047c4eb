//! The JSON management API under `/api/v1` (who am I, users, tenants with their usage, members,
//! API keys, alert state) and the OpenAPI 3.1 document that describes every `/api/v1` route,
//! generated from the handlers' own annotations and types (`utoipa`), served public at
//! `/api/v1/openapi.json` and as a page at `/api/docs`.
//!
//! The same access rules as the pages hold (each route declares its [`Access`]; cookie callers
//! send `X-CSRF-Token`, keys need the scope) and the same audit entries are written, because
//! both call the same `auth` functions.

mod alerts;
mod docs;
mod global_keys;
mod keys;
mod me;
mod members;
mod tenants;
mod users;

use axum::body::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use super::ApiError;
use super::access::Route;

pub use docs::{Binary, OtlpStatus};
pub(super) use keys::tenant_key;
pub(super) use members::member;

pub fn routes() -> Vec<Route> {
    [
        me::routes(),
        users::routes(),
        tenants::routes(),
        members::routes(),
        keys::routes(),
        global_keys::routes(),
        alerts::routes(),
        docs::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Every error answer of the API.
#[derive(Serialize, ToSchema)]
pub struct Error {
    /// What went wrong, in words; a server fault gives a request id to quote instead.
    pub error: String,
    /// Per-item problems where a request had several (a write's bad lines); empty otherwise.
    pub details: Vec<serde_json::Value>,
}

/// A JSON request body as `T`; a malformed one is a 400 naming the line and column and what
/// was expected.
pub(super) fn json_body<T: DeserializeOwned>(body: &Bytes, expected: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "request body, line {} column {}: {e}; expected {expected}",
            e.line(),
            e.column()
        ))
    })
}

/// A user id from the path: a number, or a 400 that says so (not axum's plain-text rejection).
pub(super) fn user_id(text: &str) -> Result<i64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::BadRequest(format!("user id {text:?} is not a number")))
}

/// A stored millisecond timestamp as RFC 3339 (UTC).
pub(super) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_body_names_its_line_and_column() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Want {
            role: String,
        }
        let e = json_body::<Want>(
            &Bytes::from("{\n  \"role\": 3\n}"),
            "{\"role\": \"viewer\"}",
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("line 2 column"), "{text}");
        assert!(text.contains("expected {\"role\""), "{text}");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
