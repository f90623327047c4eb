//! Alerts for people: the tenant's alerts page (active, pending, silences, history, deliveries,
//! in-app notifications), acknowledgement and silences (editors and admins), and a server-sent
//! event stream of changes for open pages. The JSON API over the same functions is
//! `api/alerts.rs`.

use std::convert::Infallible;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use minijinja::context;
use serde_json::{Value, json};

use super::access::{Access, Caller, Route};
use super::error::PageError;
use super::extract::{Form, user_json};
use super::{ApiError, AppState};
use crate::alerts::{Labels, Matchers, StoredInstance};
use crate::auth::{AuditEvent, Need};
use crate::config::HumanDuration;
use crate::panels::values;

pub fn routes() -> Vec<Route> {
    let (read, act) = (Access::Tenant(Need::Read), Access::Tenant(Need::Act));
    vec![
        Route::get("/t/{tenant}/alerts", read, page),
        Route::get("/t/{tenant}/alerts/events", read, events),
        Route::post("/t/{tenant}/alerts/ack", act, acknowledge),
        Route::post("/t/{tenant}/alerts/silences", act, silence),
        Route::post("/t/{tenant}/alerts/silences/{id}/expire", act, expire),
    ]
}

pub(super) fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// The newest changes from the tenant's `alerts` table (empty before the first one).
async fn history(state: &AppState, tenant: &str) -> Vec<Value> {
    let Ok(store) = state.tenant(tenant).await else {
        return vec![];
    };
    if store.table("alerts").is_none() {
        return vec![];
    }
    let sql = "SELECT time, rule, severity, state, labels, value, message FROM alerts ORDER BY time DESC LIMIT 200";
    match state.engine.collect(&store, sql).await {
        Ok(batches) => {
            let columns = values::column_names(&batches);
            values::json_rows(&batches)
                .into_iter()
                .map(|row| {
                    let mut h: serde_json::Map<String, Value> =
                        columns.iter().cloned().zip(row).collect();
                    let labels: Labels = h
                        .get("labels")
                        .and_then(Value::as_str)
                        .and_then(|t| serde_json::from_str(t).ok())
                        .unwrap_or_default();
                    h.insert("labels_text".into(), json!(labels_text(&labels)));
                    Value::Object(h)
                })
                .collect()
        }
        Err(e) => {
            tracing::warn!(%tenant, error = %e, "cannot read the alerts table");
            vec![]
        }
    }
}

/// `host=a, dc=x`, without the evaluator's own `__` labels: a rule-level alert shows none.
fn labels_text(labels: &Labels) -> String {
    labels
        .iter()
        .filter(|(k, _)| !k.starts_with("__"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn instance_json(i: &StoredInstance) -> Value {
    json!({
        "rule": i.rule, "severity": i.severity, "state": i.state, "labels": i.labels,
        "labels_key": crate::alerts::labels_key(&i.labels),
        "labels_text": labels_text(&i.labels),
        "since": time(i.since), "value": i.value, "message": i.message,
        "acked_by": i.acked_by, "acked_at": i.acked_at.map(time),
    })
}

pub(super) async fn summary(state: &AppState, tenant: &str) -> Result<Value, ApiError> {
    state.tenant(tenant).await?;
    let store = state.alerts.store();
    let now = state.alerts.now_ms();
    let active: Vec<Value> = store
        .active(tenant)
        .await?
        .iter()
        .map(instance_json)
        .collect();
    let silences: Vec<Value> = store
        .silences(tenant, now)
        .await
        ?
        .iter()
        .map(|s| json!({"id": s.id, "matchers": s.matchers, "starts_at": time(s.starts_at), "ends_at": time(s.ends_at), "created_by": s.created_by, "comment": s.comment,
            "matchers_text": s.matchers.to_string()}))
        .collect();
    let deliveries: Vec<Value> = store
        .deliveries(tenant, 50)
        .await
        ?
        .iter()
        .map(|d| json!({"at": time(d.at), "channel": d.channel, "kind": d.kind, "alerts": d.alerts, "attempts": d.attempts, "outcome": d.outcome, "error": d.error}))
        .collect();
    let notifications: Vec<Value> = store
        .notifications(tenant, 50)
        .await?
        .iter()
        .map(|n| notification_json(tenant, n, time))
        .collect();
    Ok(json!({
        "firing": active.iter().filter(|a| a["state"] == "firing").collect::<Vec<_>>(),
        "pending": active.iter().filter(|a| a["state"] == "pending").collect::<Vec<_>>(),
        "problems": active.iter().filter(|a| a["state"] == "nodata" || a["state"] == "error").collect::<Vec<_>>(),
        "silences": silences,
        "deliveries": deliveries,
        "notifications": notifications,
        "history": history(state, tenant).await,
    }))
}

/// An in-app notice for pages and the API: an event's picture as its thumbnail URL.
pub fn notification_json(
    tenant: &str,
    n: &crate::alerts::Notification,
    time: impl Fn(i64) -> String,
) -> Value {
    let thumbnail = n
        .attachment
        .as_ref()
        .map(|id| format!("/api/v1/tenants/{tenant}/attachments/{id}?thumbnail=1"));
    json!({"at": time(n.at), "rule": n.rule, "labels": n.labels, "severity": n.severity,
        "state": n.state, "message": n.message, "thumbnail": thumbnail, "link": n.link})
}

async fn render(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    message: Option<String>,
) -> Result<Response, PageError> {
    let data = summary(state, tenant).await?;
    let principal = caller.principal()?;
    let html = state.pages.page(
        "alerts.html",
        context! {
            title => format!("{tenant}: alerts"),
            tenant => json!({"name": tenant, "title": tenant}),
            tenant_name => tenant,
            user => user_json(principal, Some(tenant)),
            can_act => principal.allows(tenant, Need::Act),
            data => data,
            message => message,
        },
    )?;
    Ok(Html(html).into_response())
}

async fn page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
) -> Result<Response, PageError> {
    render(&state, &caller, &tenant, None).await
}

async fn acknowledge(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = Form::parse(&body);
    let labels: Labels = serde_json::from_str(form.get("labels"))
        .map_err(|e| ApiError::BadRequest(format!("labels: {e}")))?;
    let done = acknowledge_alert(&state, &caller, &tenant, form.get("rule"), &labels).await?;
    let message = if done {
        format!("Acknowledged {}.", form.get("rule"))
    } else {
        "That alert is no longer firing.".to_string()
    };
    render(&state, &caller, &tenant, Some(message)).await
}

/// Acknowledges the firing alert `rule` with `labels` (audited); false when it is no longer
/// firing.
pub(super) async fn acknowledge_alert(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    rule: &str,
    labels: &Labels,
) -> Result<bool, ApiError> {
    let actor = caller.actor();
    let now = state.alerts.now_ms();
    let done = state
        .alerts
        .store()
        .acknowledge(tenant, rule, labels, &actor.name, now)
        .await?;
    if done {
        let event =
            AuditEvent::ok("alert.ack", json!({"rule": rule, "labels": labels})).in_tenant(tenant);
        state.auth.audit(&actor, event).await;
    }
    Ok(done)
}

/// Ends the active silence `id` (audited); a 404 when there is none.
pub(super) async fn end_silence(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    id: i64,
) -> Result<(), ApiError> {
    let now = state.alerts.now_ms();
    let done = state.alerts.store().expire_silence(tenant, id, now).await?;
    if !done {
        return Err(ApiError::NotFound(format!(
            "no active silence {id} in tenant {tenant}"
        )));
    }
    let event = AuditEvent::ok("alert.unsilence", json!({"id": id})).in_tenant(tenant);
    state.auth.audit(&caller.actor(), event).await;
    Ok(())
}

pub(super) async fn add_silence(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    matchers: &Matchers,
    duration: &str,
    comment: &str,
) -> Result<i64, ApiError> {
    state.tenant(tenant).await?;
    let duration: HumanDuration = duration
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("duration: {e}")))?;
    let now = state.alerts.now_ms();
    let actor = caller.actor();
    let id = state
        .alerts
        .store()
        .add_silence(
            tenant,
            matchers,
            now,
            now + duration.0.as_millis() as i64,
            &actor.name,
            comment,
        )
        .await?;
    let event = AuditEvent::ok("alert.silence", json!({"id": id, "matchers": matchers.to_string(), "duration": duration.to_string(), "comment": comment})).in_tenant(tenant);
    state.auth.audit(&actor, event).await;
    Ok(id)
}

async fn silence(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let form = Form::parse(&body);
    let matchers = Matchers::parse(form.get("matchers"))
        .map_err(|e| ApiError::BadRequest(format!("matchers: {e}")))?;
    let id = add_silence(
        &state,
        &caller,
        &tenant,
        &matchers,
        form.get("duration"),
        form.get("comment"),
    )
    .await?;
    render(
        &state,
        &caller,
        &tenant,
        Some(format!("Silence {id} created.")),
    )
    .await
}

async fn expire(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, id)): Path<(String, i64)>,
) -> Result<Response, PageError> {
    end_silence(&state, &caller, &tenant, id).await?;
    render(
        &state,
        &caller,
        &tenant,
        Some(format!("Silence {id} ended.")),
    )
    .await
}

/// Changes of this tenant's alerts as they happen (`event: alert`, JSON data).
async fn events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
) -> Result<Response, ApiError> {
    state.tenant(&tenant).await?;
    let recheck = super::streams::Recheck::new(&state, &caller, &tenant, true)?;
    let rx = state.alerts.subscribe();
    let closing = state.alerts.closing();
    let changes = futures::stream::unfold(
        (rx, tenant.clone(), closing),
        |(mut rx, tenant, closing)| async move {
            loop {
                let received = tokio::select! {
                    _ = closing.cancelled() => return None,
                    r = rx.recv() => r,
                };
                match received {
                    Ok(e) if e.tenant == tenant => {
                        let data = serde_json::to_string(&e).unwrap_or_default();
                        let event = Event::default().event("alert").data(data);
                        return Some((Ok::<_, Infallible>(event), (rx, tenant, closing)));
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    let stream = super::streams::rechecked(Box::pin(changes), recheck, None);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_level_alerts_show_no_internal_labels_and_a_dash_for_no_value() {
        let rule_level: Labels = [("__rule__".to_string(), "rule".to_string())].into();
        assert_eq!(labels_text(&rule_level), "");
        let series: Labels = [
            ("host".to_string(), "a".to_string()),
            ("__rule__".to_string(), "x".to_string()),
        ]
        .into();
        assert_eq!(labels_text(&series), "host=a");
        let alert = json!({"rule": "sensor", "severity": "high", "state": "nodata",
            "labels_text": "", "value": null, "since": "—", "message": "no data"});
        let history = json!({"time": "t", "rule": "sensor", "severity": "high", "state": "nodata",
            "labels": "{\"__rule__\":\"rule\"}", "labels_text": "", "value": null, "message": null});
        let data = json!({"firing": [alert.clone()], "pending": [alert.clone()],
            "problems": [alert], "silences": [], "deliveries": [], "notifications": [],
            "history": [history]});
        let html = crate::render::Pages::new()
            .page(
                "alerts.html",
                context! { title => "t", tenant_name => "acme", data => data, can_act => false },
            )
            .unwrap();
        assert!(!html.contains("__rule__"), "{html}");
        assert!(
            !html.contains(">none<") && !html.contains("= none"),
            "{html}"
        );
        assert!(html.contains("<td>–</td>"), "{html}");
    }
}
