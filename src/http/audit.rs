//! The audit log: `/admin/audit` (global admins, every tenant) and `/t/{tenant}/admin/audit`
//! (tenant admins), filtered by actor, action, outcome and time; as a page, or exported as CSV
//! (through the query results' CSV encoder) or JSON — each export itself audited.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use minijinja::context;
use serde_json::{Value, json};

use super::access::{Access, Caller, Route};
use super::admin::time;
use super::error::PageError;
use super::extract::user_json;
use super::{ApiError, AppState};
use crate::auth::{AuditEntry, AuditFilter, Need};

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/admin/audit", Access::GlobalAdmin, audit_all),
        Route::get(
            "/t/{tenant}/admin/audit",
            Access::Tenant(Need::Manage),
            audit_tenant,
        ),
    ]
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

async fn audit_all(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, PageError> {
    audit_page(&state, &caller, None, q).await
}

async fn audit_tenant(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(tenant): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, PageError> {
    audit_page(&state, &caller, Some(tenant), q).await
}

fn parse_time(text: Option<&str>, name: &str, now_ms: i64) -> Result<Option<i64>, ApiError> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => crate::panels::parse_instant(t, now_ms * 1_000_000)
            .map(|ns| Some(ns / 1_000_000))
            .map_err(|e| ApiError::BadRequest(format!("{name}: {e}"))),
    }
}

async fn audit_page(
    state: &AppState,
    caller: &Caller,
    tenant: Option<String>,
    q: AuditQuery,
) -> Result<Response, PageError> {
    let now = state.auth.now_ms();
    let filter = AuditFilter {
        tenant: tenant.clone(),
        actor: q.actor.clone(),
        action: q.action.clone(),
        outcome: q.outcome.clone(),
        from_ms: parse_time(q.from.as_deref(), "from", now)?,
        to_ms: parse_time(q.to.as_deref(), "to", now)?,
        limit: Some(if q.format.is_some() { 100_000 } else { 500 }),
    };
    let entries = state.auth.audit_entries(&filter).await?;
    let scope = tenant.as_deref().unwrap_or("all");
    let audit_event = |rows: usize| {
        let mut e = crate::auth::AuditEvent::ok(
            "audit.export",
            json!({"rows": rows, "filter": {"actor": q.actor, "action": q.action, "outcome": q.outcome, "from": q.from, "to": q.to}}),
        );
        e.tenant = tenant.clone();
        e
    };
    match q.format.as_deref() {
        Some("csv") => {
            let body = audit_csv(&entries)?;
            state
                .auth
                .audit(&caller.actor(), audit_event(entries.len()))
                .await;
            let disposition = format!("attachment; filename=\"audit-{scope}.csv\"");
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv".to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                body,
            )
                .into_response())
        }
        Some("json") => {
            state
                .auth
                .audit(&caller.actor(), audit_event(entries.len()))
                .await;
            Ok(axum::Json(entries).into_response())
        }
        Some(other) => {
            Err(ApiError::BadRequest(format!("format must be csv or json, not {other:?}")).into())
        }
        None => audit_html(state, caller, tenant, &q, &entries),
    }
}

/// The audit log as a page with its filter form and a CSV link for the same filter.
fn audit_html(
    state: &AppState,
    caller: &Caller,
    tenant: Option<String>,
    q: &AuditQuery,
    entries: &[AuditEntry],
) -> Result<Response, PageError> {
    let rows: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "time": time(Some(e.at)), "actor": e.actor, "tenant": e.tenant, "ip": e.ip,
                "action": e.action, "outcome": e.outcome, "details": e.details.to_string(),
            })
        })
        .collect();
    let mut csv_query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("actor", &q.actor),
        ("action", &q.action),
        ("outcome", &q.outcome),
        ("from", &q.from),
        ("to", &q.to),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            csv_query.append_pair(k, v);
        }
    }
    csv_query.append_pair("format", "csv");
    let base = match &tenant {
        Some(t) => format!("/t/{t}/admin/audit"),
        None => "/admin/audit".into(),
    };
    let html = state.pages.page(
        "audit.html",
        context! {
            title => "Audit log", user => user_json(caller.principal()?, tenant.as_deref()),
            tenant_name => tenant, entries => rows, filter => json!({"actor": q.actor, "action": q.action, "outcome": q.outcome}),
            from => q.from.clone().unwrap_or_default(), to => q.to.clone().unwrap_or_default(),
            csv_url => format!("{base}?{}", csv_query.finish()),
        },
    )?;
    Ok(Html(html).into_response())
}

/// The audit entries as CSV, through the same encoder as query results.
fn audit_csv(entries: &[AuditEntry]) -> Result<Vec<u8>, ApiError> {
    use arrow::array::{ArrayRef, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let names = [
        "time", "actor", "tenant", "ip", "action", "outcome", "details",
    ];
    let cells = |cell: &dyn Fn(&AuditEntry) -> String| -> ArrayRef {
        std::sync::Arc::new(StringArray::from_iter_values(entries.iter().map(cell)))
    };
    let columns = vec![
        cells(&|e| {
            chrono::DateTime::from_timestamp_millis(e.at)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        }),
        cells(&|e| e.actor.clone()),
        cells(&|e| e.tenant.clone().unwrap_or_default()),
        cells(&|e| e.ip.clone().unwrap_or_default()),
        cells(&|e| e.action.clone()),
        cells(&|e| e.outcome.clone()),
        cells(&|e| e.details.to_string()),
    ];
    let fields: Vec<Field> = names
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, false))
        .collect();
    let schema = std::sync::Arc::new(Schema::new(fields));
    let batch = arrow::record_batch::RecordBatch::try_new(schema.clone(), columns)
        .map_err(crate::render::RenderError::from)?;
    Ok(crate::render::encode_all(
        crate::render::ExportFormat::Csv,
        &schema,
        &[batch],
    )?)
}
