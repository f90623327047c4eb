//! `/api/v1/tenants/{tenant}/alerts`: the alert state (what the alerts page shows), and what
//! editors do about it — acknowledge a firing alert, list, add and end silences. The same
//! functions as the page, so the same audit entries.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::super::access::{Access, Caller, Route};
use super::super::alerts::{acknowledge_alert, add_silence, end_silence, summary};
use super::super::{ApiError, AppState};
use super::{json_body, rfc3339};
use crate::alerts::Matchers;
use crate::auth::Need;

pub fn routes() -> Vec<Route> {
    let (read, act) = (Access::Tenant(Need::Read), Access::Tenant(Need::Act));
    vec![
        Route::get("/api/v1/tenants/{tenant}/alerts", read, state_of_alerts),
        Route::post("/api/v1/tenants/{tenant}/alerts/ack", act, acknowledge),
        Route::get("/api/v1/tenants/{tenant}/alerts/silences", read, silences),
        Route::post("/api/v1/tenants/{tenant}/alerts/silences", act, silence),
        Route::delete(
            "/api/v1/tenants/{tenant}/alerts/silences/{id}",
            act,
            unsilence,
        ),
    ]
}

/// The tenant's alerts: `firing`, `pending`, `problems` (no data, errors), `silences`,
/// `deliveries`, `notifications` and `history` (the newest changes), as the alerts page shows.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/alerts", tag = "alerts",
    params(("tenant" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = super::Error)))]
async fn state_of_alerts(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(summary(&state, &tenant).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Acknowledge {
    /// The alert rule's name.
    pub rule: String,
    /// The alert's labels, as listed (`labels` of a firing alert).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize, ToSchema)]
pub struct Acknowledged {
    /// False when the alert was no longer firing (nothing changed).
    pub acknowledged: bool,
}

/// Acknowledges a firing alert.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/alerts/ack", tag = "alerts",
    params(("tenant" = String, Path)), request_body = Acknowledge,
    responses((status = 200, body = Acknowledged), (status = 400, body = super::Error),
        (status = 404, body = super::Error)))]
async fn acknowledge(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<Json<Acknowledged>, ApiError> {
    state.tenant(&tenant).await?;
    let ask: Acknowledge = json_body(&body, "{\"rule\": \"…\", \"labels\": {…}}")?;
    let acknowledged = acknowledge_alert(&state, &caller, &tenant, &ask.rule, &ask.labels).await?;
    Ok(Json(Acknowledged { acknowledged }))
}

/// A silence: alerts its matchers cover are not sent while it lasts.
#[derive(Serialize, ToSchema)]
pub struct Silence {
    pub id: i64,
    /// As text: `alertname=disk_high, host=~web-.*`.
    pub matchers: String,
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
    pub comment: String,
}

/// The tenant's active and future silences.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/alerts/silences", tag = "alerts",
    params(("tenant" = String, Path)),
    responses((status = 200, body = Vec<Silence>), (status = 404, body = super::Error)))]
async fn silences(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<Silence>>, ApiError> {
    state.tenant(&tenant).await?;
    let now = state.alerts.now_ms();
    let silences = state.alerts.store().silences(&tenant, now).await?;
    Ok(Json(
        silences
            .into_iter()
            .map(|s| Silence {
                id: s.id,
                matchers: s.matchers.to_string(),
                starts_at: rfc3339(s.starts_at),
                ends_at: rfc3339(s.ends_at),
                created_by: s.created_by,
                comment: s.comment,
            })
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct NewSilence {
    /// `alertname=disk_high, host=~web-.*`; a `{label: value}` map or a list of
    /// `{name, op, value}` (or Alertmanager's `{name, value, isRegex, isEqual}`) are taken too.
    #[schema(value_type = String, example = "alertname=disk_high, host=~web-.*")]
    pub matchers: Matchers,
    /// How long it lasts: `2h`, `30m`.
    #[schema(example = "2h")]
    pub duration: String,
    #[serde(default)]
    pub comment: String,
}

#[derive(Serialize, ToSchema)]
pub struct SilenceId {
    pub id: i64,
}

/// Silences the alerts the matchers cover, from now for `duration`.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/alerts/silences", tag = "alerts",
    params(("tenant" = String, Path)), request_body = NewSilence,
    responses((status = 201, body = SilenceId), (status = 400, body = super::Error),
        (status = 404, body = super::Error)))]
async fn silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<SilenceId>), ApiError> {
    let expected = "{\"matchers\": \"alertname=disk_high, host=~web-.*\" (or a label map, or a \
                    list of {name, op, value}), \"duration\": \"2h\", \"comment\": \"…\"}";
    let ask: NewSilence = json_body(&body, expected)?;
    let id = add_silence(
        &state,
        &caller,
        &tenant,
        &ask.matchers,
        &ask.duration,
        &ask.comment,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(SilenceId { id })))
}

/// Ends an active silence at once.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/alerts/silences/{id}", tag = "alerts",
    params(("tenant" = String, Path), ("id" = i64, Path)),
    responses((status = 204), (status = 404, body = super::Error)))]
async fn unsilence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("silence id {id:?} is not a number")))?;
    state.tenant(&tenant).await?;
    end_silence(&state, &caller, &tenant, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
