//! The panel request in a URL's query string: axum's `Query` cannot collect the repeatable
//! `var-<name>` parameters of dashboard variables, so this extractor reads the raw query.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::ApiError;
use crate::panels::PanelRequest;

/// `PanelRequest` from the query string, `var-*` included; a malformed query is a 400.
pub struct PanelQuery(pub PanelRequest);

impl<S: Send + Sync> FromRequestParts<S> for PanelQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        PanelRequest::from_query(parts.uri.query().unwrap_or_default())
            .map(PanelQuery)
            .map_err(|e| ApiError::BadRequest(e.to_string()))
    }
}
