//! Panel actions over HTTP: `POST /api/v1/tenants/{t}/actions/{action}` (202 and the run) and
//! `GET …/actions/runs/{run}`; on pages, a confirmation (`GET /t/{t}/actions/{action}` with the
//! panel, the row's key as `row.<column>` and the page's range and variables), its form
//! (`POST`, CSRF) and the run's own page, which refreshes while the run is under way.

use std::collections::BTreeMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::access::{Access, Caller, Route};
use super::error::PageError;
use super::extract::user_json;
use super::pages::pairs;
use super::views::with_query;
use super::{ApiError, AppState};
use crate::actions::{ActionError, Ask, Prepared, Run, RunStatus, Who};
use crate::auth::{AuditEvent, Need, PrincipalKind};
use crate::panels::PanelRequest;

pub fn routes() -> Vec<Route> {
    let (read, run) = (Access::Tenant(Need::Read), Access::Tenant(Need::Run));
    vec![
        Route::post("/api/v1/tenants/{tenant}/actions/{action}", run, api_start),
        Route::get("/api/v1/tenants/{tenant}/actions/runs/{run}", read, api_run),
        Route::get("/t/{tenant}/actions/{action}", run, confirm_page),
        Route::post("/t/{tenant}/actions/{action}", run, start_from_page),
        Route::get("/t/{tenant}/actions/runs/{run}", read, run_page),
    ]
}

/// Who the caller is, as actions see it.
fn who(caller: &Caller, tenant: &str) -> Result<Who, ApiError> {
    let principal = caller.principal()?;
    let user = match &principal.kind {
        PrincipalKind::User { email, .. } => email.clone(),
        PrincipalKind::Key { .. } => principal.actor(),
    };
    Ok(Who {
        actor: caller.actor(),
        user,
        is_admin: principal.allows(tenant, Need::Manage),
    })
}

/// Prepares the run; an admin-only action asked by someone else is refused and audited.
async fn prepare(state: &AppState, ask: &Ask<'_>, who: &Who) -> Result<Prepared, ApiError> {
    match state.actions.prepare(ask, who).await {
        Err(ActionError::AdminOnly(action)) => {
            let details = json!({"panel": ask.panel, "action": action});
            let event = AuditEvent::denied("action.run", details).in_tenant(ask.tenant);
            state.auth.audit(&who.actor, event).await;
            Err(ActionError::AdminOnly(action).into())
        }
        other => Ok(other?),
    }
}

/// A variable's value in a JSON body: one value or a list (a multi variable).
#[derive(Deserialize)]
#[serde(untagged)]
enum VarValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    panel: String,
    #[serde(default)]
    row: Map<String, Value>,
    from: Option<String>,
    to: Option<String>,
    dashboard: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, VarValue>,
}

fn run_json(run: &Run) -> Value {
    json!(run)
}

/// Starts a panel action on a row of a panel (202 and the run to follow).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/actions/{action}", tag = "actions",
    params(("tenant" = String, Path), ("action" = String, Path)),
    request_body(content = Object, description = "`{\"panel\", \"row\": {key columns}, \"from\", \"to\", \"dashboard\", \"vars\"}`"),
    responses((status = 202, body = Object, description = "The run, under way"), (status = 400, body = crate::http::api::Error),
        (status = 404, body = crate::http::api::Error), (status = 409, body = crate::http::api::Error)))]
async fn api_start(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: StartBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body: {e} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let request = PanelRequest {
        from: body.from,
        to: body.to,
        dashboard: body.dashboard,
        vars: body
            .vars
            .into_iter()
            .map(|(k, v)| match v {
                VarValue::One(one) => (k, vec![one]),
                VarValue::Many(many) => (k, many),
            })
            .collect(),
        ..PanelRequest::default()
    };
    state.tenant(&tenant).await?;
    let who = who(&caller, &tenant)?;
    let ask = Ask {
        tenant: &tenant,
        panel: &body.panel,
        action: &action,
        request: &request,
        row: &body.row,
    };
    let prepared = prepare(&state, &ask, &who).await?;
    let run = state.actions.start(prepared, &who)?;
    let location = format!("/api/v1/tenants/{tenant}/actions/runs/{}", run.run);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        axum::Json(run_json(&run)),
    )
        .into_response())
}

/// A panel action's run: its status, the answer it got, when it ended.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/actions/runs/{run}", tag = "actions",
    params(("tenant" = String, Path), ("run" = String, Path)), responses((status = 200, body = Object), (status = 404, body = crate::http::api::Error)))]
async fn api_run(
    State(state): State<AppState>,
    Path((tenant, run)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state.tenant(&tenant).await?;
    let run = state.actions.run(&tenant, &run).await?;
    Ok(axum::Json(run_json(&run)).into_response())
}

/// A page's ask: `panel`, `row.<column>` (the key) and the page's own parameters.
struct PageAsk {
    panel: String,
    row: Map<String, Value>,
    /// Range, variables and dashboard, as the page had them.
    page: Vec<(String, String)>,
    request: PanelRequest,
}

fn page_ask(fields: Vec<(String, String)>) -> Result<PageAsk, ApiError> {
    let mut panel = None;
    let mut row = Map::new();
    let mut page = vec![];
    for (name, value) in fields {
        if name == "panel" {
            panel = Some(value);
        } else if let Some(column) = name.strip_prefix("row.") {
            row.insert(column.to_string(), Value::String(value));
        } else if name == "from" || name == "to" || name == "dashboard" || name.starts_with("var-")
        {
            page.push((name, value));
        }
    }
    let panel = panel.ok_or_else(|| ApiError::BadRequest("`panel` is missing".into()))?;
    let query =
        serde_urlencoded::to_string(&page).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let request = PanelRequest::from_query(&query).map_err(crate::panels::PanelError::from)?;
    Ok(PageAsk {
        panel,
        row,
        page,
        request,
    })
}

impl PageAsk {
    /// The dashboard the page was on (or the panel's own page), with its range and variables.
    fn back_url(&self, tenant: &str) -> String {
        let dashboard = self.page.iter().find(|(k, _)| k == "dashboard");
        let path = match dashboard {
            Some((_, d)) => format!("/t/{tenant}/d/{}", super::views::path_segment(d)),
            None => format!("/t/{tenant}/p/{}", super::views::path_segment(&self.panel)),
        };
        with_query(&path, &self.page)
    }

    fn ask<'a>(&'a self, tenant: &'a str, action: &'a str) -> Ask<'a> {
        Ask {
            tenant,
            panel: &self.panel,
            action,
            request: &self.request,
            row: &self.row,
        }
    }
}

async fn confirm_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, action)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    state.tenant(&tenant).await?;
    let fields = pairs(&raw);
    let asked = page_ask(fields.clone())?;
    let who = who(&caller, &tenant)?;
    let prepared = prepare(&state, &asked.ask(&tenant, &action), &who).await?;
    let panel_title = state
        .panels
        .panel(&tenant, &asked.panel)
        .map(|p| p.config.title.clone())
        .unwrap_or_default();
    let confirm = prepared
        .confirm
        .clone()
        .unwrap_or_else(|| format!("{} on {}?", prepared.action.label, prepared.target));
    let hidden: Vec<Value> = fields
        .iter()
        .filter(|(k, _)| k != "_csrf")
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    let html = state.pages.page(
        "action_confirm.html",
        context! {
            title => format!("{}: {}", tenant, prepared.action.label),
            tenant => json!({"name": tenant, "title": tenant}),
            user => user_json(caller.principal()?, Some(&tenant)),
            action => json!({"id": prepared.action.id, "label": prepared.action.label}),
            confirm => confirm,
            target => (!prepared.key.is_empty()).then_some(prepared.target.clone()),
            panel_title => panel_title,
            post_url => format!("/t/{tenant}/actions/{}", super::views::path_segment(&action)),
            hidden => hidden,
            back_url => asked.back_url(&tenant),
        },
    )?;
    Ok(Html(html).into_response())
}

async fn start_from_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, PageError> {
    state.tenant(&tenant).await?;
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let asked = page_ask(fields)?;
    let who = who(&caller, &tenant)?;
    let prepared = prepare(&state, &asked.ask(&tenant, &action), &who).await?;
    let run = state.actions.start(prepared, &who)?;
    let back = [("back".to_string(), asked.back_url(&tenant))];
    Ok(Redirect::to(&with_query(
        &format!("/t/{tenant}/actions/runs/{}", run.run),
        &back,
    ))
    .into_response())
}

async fn run_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    state.tenant(&tenant).await?;
    let run = state.actions.run(&tenant, &id).await?;
    // Only a path within this tenant's pages: `back` must not send people elsewhere.
    let home = format!("/t/{tenant}");
    let back_url = pairs(&raw)
        .into_iter()
        .find(|(k, _)| k == "back")
        .map(|(_, v)| v)
        .filter(|v| {
            v == &home || v.starts_with(&format!("{home}/")) || v.starts_with(&format!("{home}?"))
        })
        .unwrap_or(home);
    let config = state.panels.tenant_config(&tenant)?;
    let html = state.pages.page(
        "action_run.html",
        context! {
            title => format!("{}: {} {}", tenant, run.label, run.target),
            tenant => json!({"name": tenant, "title": tenant}),
            user => user_json(caller.principal()?, Some(&tenant)),
            refresh_secs => (run.status == RunStatus::Running).then_some(2),
            started => crate::render::local_time(run.started_at, config.timezone),
            run => run_json(&run),
            back_url => back_url,
        },
    )?;
    Ok(Html(html).into_response())
}
