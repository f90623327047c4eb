//! Server-rendered pages: `/` (tenants), `/t/{tenant}` and `/t/{tenant}/d/{dashboard}`
//! (dashboards), `/t/{tenant}/p/{panel}` (drill-down), `/t/{tenant}/r/{panel}` (report),
//! `/t/{tenant}/p/{panel}/fragment` (one panel's HTML, for auto-refresh) and
//! `/t/{tenant}/p/{panel}.svg` / `.png` (a timeseries chart alone). Panel failures render inside the
//! panel; the page itself still loads.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use minijinja::Value as Jinja;
use serde_json::{Value, json};

use super::access::{Access, Caller, Route};
use super::login::user_json;
use super::{ApiError, AppState};
use crate::auth::Need;
use crate::config::{Placement, TenantPanels};
use crate::panels::{PanelError, PanelRequest};
use crate::render::{APP_JS, FAVICON_SVG, FragmentOptions, app_css, escape_html, points_table};

pub fn routes() -> Vec<Route> {
    let read = Access::Tenant(Need::Read);
    vec![
        Route::get("/", Access::SignedIn, home),
        Route::get("/static/app.css", Access::Public, css),
        Route::get("/static/app.js", Access::Public, js),
        Route::get("/static/favicon.svg", Access::Public, favicon),
        Route::get("/t/{tenant}", read, default_dashboard),
        Route::get("/t/{tenant}/d/{dashboard}", read, dashboard),
        Route::get("/t/{tenant}/p/{panel}", read, panel_page),
        Route::get("/t/{tenant}/p/{panel}/fragment", read, fragment),
        Route::get("/t/{tenant}/r/{panel}", read, report),
    ]
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
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %self.0, "page failed");
        }
        let html = format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{code} · opsboard</title>\n\
             <link rel=\"stylesheet\" href=\"/static/app.css\">\n</head>\n<body>\n<main>\n<h1>{code} {reason}</h1>\n\
             <p class=\"panel-error\">{message}</p>\n<p><a href=\"/\">All tenants</a></p>\n</main>\n</body>\n</html>\n",
            code = status.as_u16(),
            reason = status.canonical_reason().unwrap_or(""),
            message = escape_html(&self.0.to_string()),
        );
        (status, Html(html)).into_response()
    }
}

const PRESETS: [&str; 6] = ["15m", "1h", "6h", "24h", "7d", "30d"];
const DEFAULT_REFRESH_SECS: u64 = 60;
const DATA_TABLE_ROWS: usize = 1_000;

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

fn pairs(raw: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn with_query(path: &str, query: &[(String, String)]) -> String {
    if query.is_empty() {
        return path.to_string();
    }
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in query {
        s.append_pair(k, v);
    }
    format!("{path}?{}", s.finish())
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        app_css(),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
        .into_response()
}

async fn favicon() -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml")], FAVICON_SVG).into_response()
}

/// The tenant picker: only the tenants the caller may read.
async fn home(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Html<String>, PageError> {
    let principal = caller.principal()?;
    let configs = state.panels.configs();
    let tenants: Vec<Value> = crate::config::tenant_names(&configs.dirs().tenants_dir)
        .into_iter()
        .filter(|name| principal.allows(name, Need::Read))
        .map(|name| {
            let ok = configs.problems(&name).is_none_or(|(p, _)| p.is_empty());
            let title = configs
                .current(&name)
                .and_then(|(c, _)| c.settings.name.clone())
                .unwrap_or_else(|| name.clone());
            json!({ "url": format!("/t/{name}"), "title": title, "ok": ok })
        })
        .collect();
    let html = state.pages.page(
        "home.html",
        minijinja::context! { title => "Tenants", tenants => tenants, user => user_json(principal, None) },
    )?;
    Ok(Html(html))
}

/// Header data shared by tenant pages: tenant, dashboards, range presets, config errors.
fn chrome(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    config: Option<&TenantPanels>,
    current_dashboard: Option<&str>,
    path: &str,
    query: &[(String, String)],
) -> Value {
    let dashboards: Vec<Value> = config
        .map(|c| {
            c.dashboards
                .values()
                .map(|d| {
                    json!({
                        "url": format!("/t/{tenant}/d/{}", d.name),
                        "title": d.config.name,
                        "current": Some(d.name.as_str()) == current_dashboard,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let from = query
        .iter()
        .find(|(k, _)| k == "from")
        .map(|(_, v)| v.clone());
    let to = query
        .iter()
        .find(|(k, _)| k == "to")
        .map(|(_, v)| v.clone());
    let keep: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "from" && k != "to" && k != "page")
        .cloned()
        .collect();
    let presets: Vec<Value> = PRESETS
        .iter()
        .map(|p| {
            let mut q = keep.clone();
            q.push(("from".into(), format!("now-{p}")));
            q.push(("to".into(), "now".into()));
            let current =
                from.as_deref() == Some(&format!("now-{p}")) || (from.is_none() && *p == "24h");
            json!({ "label": p, "url": with_query(path, &q), "current": current })
        })
        .collect();
    let hidden: Vec<Value> = keep
        .iter()
        .map(|(k, v)| json!({ "name": k, "value": v }))
        .collect();
    let errors: Vec<String> = state
        .panels
        .configs()
        .problems(tenant)
        .map(|(p, _)| p.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    json!({
        "user": caller.principal.as_deref().map(|p| user_json(p, Some(tenant))),
        "tenant": { "name": tenant, "title": config.and_then(|c| c.settings.name.clone()).unwrap_or_else(|| tenant.to_string()) },
        "dashboards": dashboards,
        "range": { "presets": presets, "from": from.unwrap_or_else(|| "now-24h".into()), "to": to.unwrap_or_else(|| "now".into()), "hidden": hidden },
        "config_errors": errors,
    })
}

fn merge(base: Value, extra: Vec<(&str, Jinja)>) -> Jinja {
    let mut map: std::collections::BTreeMap<String, Jinja> = base
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Jinja::from_serialize(v)))
        .collect();
    for (k, v) in extra {
        map.insert(k.to_string(), v);
    }
    Jinja::from_iter(map)
}

async fn default_dashboard(
    state: State<AppState>,
    caller: Extension<Caller>,
    Path(tenant): Path<String>,
    query: Query<PanelRequest>,
    raw: RawQuery,
) -> Result<Html<String>, PageError> {
    dashboard(
        state,
        caller,
        Path((tenant, "default".to_string())),
        query,
        raw,
    )
    .await
}

async fn dashboard(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, name)): Path<(String, String)>,
    Query(request): Query<PanelRequest>,
    RawQuery(raw): RawQuery,
) -> Result<Html<String>, PageError> {
    state.tenant(&tenant).await?;
    let query = pairs(&raw);
    let path = format!("/t/{tenant}/d/{name}");
    let config = state.panels.tenant_config(&tenant).ok();
    let Some(config) = config else {
        // No good configuration yet: the banner says why.
        let context = chrome(&state, &caller, &tenant, None, None, &path, &query);
        let html = state.pages.page(
            "dashboard.html",
            merge(
                context,
                vec![
                    ("title", Jinja::from(tenant.as_str())),
                    ("dashboard", Jinja::from_serialize(json!({"title": tenant}))),
                ],
            ),
        )?;
        return Ok(Html(html));
    };
    let board = config
        .dashboards
        .get(&name)
        .ok_or_else(|| PanelError::UnknownDashboard {
            tenant: tenant.clone(),
            dashboard: name.clone(),
        })?;
    let now = now_ns();
    let entries = board.entries(&config.panels);
    let size = |p: &Placement| ((100 * p.width).clamp(320, 1200), 90 * p.height + 80);
    let fragments = futures::future::join_all(entries.iter().map(|entry| {
        let (width, height) = size(&entry.placement);
        render_fragment(
            &state,
            &config,
            &tenant,
            &entry.panel.id,
            &request,
            &query,
            now,
            width,
            height,
        )
    }))
    .await;
    let panels: Vec<Jinja> = entries
        .iter()
        .zip(fragments)
        .map(|(entry, html)| {
            let (panel, placement) = (&entry.panel, &entry.placement);
            let (width, height) = size(placement);
            merge(
                json!({
                    "id": entry.id,
                    "title": panel.config.title,
                    "col": placement.col, "row": placement.row,
                    "width": placement.width, "height": placement.height,
                    "refresh": entry.refresh.map_or(DEFAULT_REFRESH_SECS, |d| d.0.as_secs().max(1)),
                    // Refreshed fragments keep the size the page drew them at.
                    "fragment_url": format!("/t/{tenant}/p/{}/fragment?w={width}&h={height}", panel.id),
                    // Alert panels also refresh when the page hears of an alert change.
                    "live": panel.config.kind == crate::config::PanelType::Alerts,
                    "drill_url": with_query(&format!("/t/{tenant}/p/{}", panel.id), &query),
                }),
                vec![("html", Jinja::from_safe_string(html))],
            )
        })
        .collect();
    let context = chrome(
        &state,
        &caller,
        &tenant,
        Some(&config),
        Some(&name),
        &path,
        &query,
    );
    let html = state.pages.page(
        "dashboard.html",
        merge(
            context,
            vec![
                ("title", Jinja::from(board.config.name.as_str())),
                ("dashboard", Jinja::from_serialize(json!({"title": board.config.name, "description": board.config.description}))),
                ("panels", Jinja::from(panels)),
            ],
        ),
    )?;
    Ok(Html(html))
}

/// One panel's HTML: its fragment, or its error in its own box.
#[allow(clippy::too_many_arguments)]
async fn render_fragment(
    state: &AppState,
    config: &Arc<TenantPanels>,
    tenant: &str,
    panel: &str,
    request: &PanelRequest,
    query: &[(String, String)],
    now: i64,
    width: u32,
    height: u32,
) -> String {
    let answer = match state.panels.data(tenant, panel, request, now).await {
        Ok(data) => serde_json::from_slice::<Value>(&data.json).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let options = FragmentOptions {
        tz: config.timezone,
        now_ms: now / 1_000_000,
        chart_width: width,
        chart_height: height,
        link_path: format!("/t/{tenant}/p/{panel}"),
        query: query.to_vec(),
    };
    match answer {
        Ok(answer) => state
            .pages
            .fragment(&answer, &options)
            .unwrap_or_else(|e| state.pages.error_fragment(&e.to_string())),
        Err(message) => state.pages.error_fragment(&message),
    }
}

async fn fragment(
    State(state): State<AppState>,
    Path((tenant, panel)): Path<(String, String)>,
    Query(request): Query<PanelRequest>,
    RawQuery(raw): RawQuery,
) -> Result<Html<String>, PageError> {
    state.tenant(&tenant).await?;
    let config = state.panels.tenant_config(&tenant)?;
    // `w`/`h`: the size the page drew the chart at (bounded); the drill-down's size otherwise.
    let query = pairs(&raw);
    let dimension = |name: &str, default: u32, max: u32| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<u32>().ok())
            .map_or(default, |v| v.clamp(100, max))
    };
    let (width, height) = (dimension("w", 1100, 2000), dimension("h", 420, 1200));
    let links: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "w" && k != "h")
        .cloned()
        .collect();
    let html = render_fragment(
        &state,
        &config,
        &tenant,
        &panel,
        &request,
        &links,
        now_ns(),
        width,
        height,
    )
    .await;
    Ok(Html(html))
}

async fn report(
    state: State<AppState>,
    caller: Extension<Caller>,
    path: Path<(String, String)>,
    query: Query<PanelRequest>,
    raw: RawQuery,
) -> Result<Response, PageError> {
    single_panel(state, caller, path, query, raw, true).await
}

async fn panel_page(
    state: State<AppState>,
    caller: Extension<Caller>,
    path: Path<(String, String)>,
    query: Query<PanelRequest>,
    raw: RawQuery,
) -> Result<Response, PageError> {
    single_panel(state, caller, path, query, raw, false).await
}

/// Drill-down (with navigation, aggregation toggle and the data) or report (the panel alone).
async fn single_panel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, panel_id)): Path<(String, String)>,
    Query(request): Query<PanelRequest>,
    RawQuery(raw): RawQuery,
    bare: bool,
) -> Result<Response, PageError> {
    state.tenant(&tenant).await?;
    let config = state.panels.tenant_config(&tenant)?;
    if let Some(id) = panel_id.strip_suffix(".svg") {
        return chart_image(&state, &config, &tenant, id, &request, false).await;
    }
    if let Some(id) = panel_id.strip_suffix(".png") {
        return chart_image(&state, &config, &tenant, id, &request, true).await;
    }
    let panel = config
        .panels
        .get(&panel_id)
        .ok_or_else(|| PanelError::UnknownPanel {
            tenant: tenant.clone(),
            panel: panel_id.clone(),
        })?
        .clone();
    let query = pairs(&raw);
    let now = now_ns();
    let html = render_fragment(
        &state, &config, &tenant, &panel_id, &request, &query, now, 1100, 420,
    )
    .await;
    let without = |names: &[&str]| -> Vec<(String, String)> {
        query
            .iter()
            .filter(|(k, _)| !names.contains(&k.as_str()))
            .cloned()
            .collect()
    };
    let page_path = format!("/t/{tenant}/p/{panel_id}");
    let exports: Vec<Value> = ["csv", "json", "parquet"]
        .iter()
        .map(|f| {
            let mut q = without(&["format", "page", "page_size"]);
            q.push(("format".into(), f.to_string()));
            json!({ "label": f.to_uppercase(), "url": with_query(&format!("/api/v1/tenants/{tenant}/panels/{panel_id}/export"), &q) })
        })
        .collect();
    let is_timeseries = panel.config.kind == crate::config::PanelType::Timeseries;
    let disabled = request.disable_aggregation().unwrap_or(false);
    let toggle = is_timeseries.then(|| {
        let mut q = without(&["disable_aggregation"]);
        if !disabled {
            q.push(("disable_aggregation".into(), "true".into()));
        }
        json!({ "label": if disabled { "Aggregate" } else { "Show raw data" }, "url": with_query(&page_path, &q) })
    });
    let data_table = if is_timeseries && !bare {
        timeseries_table(&state, &tenant, &panel_id, &request, now, config.timezone).await
    } else {
        Value::Null
    };
    let refresh = panel
        .config
        .refresh_interval
        .map_or(DEFAULT_REFRESH_SECS, |d| d.0.as_secs().max(1));
    let context = chrome(
        &state,
        &caller,
        &tenant,
        Some(&config),
        None,
        &page_path,
        &query,
    );
    let page = state.pages.page(
        "panel_page.html",
        merge(
            context,
            vec![
                ("title", Jinja::from(panel.config.title.as_str())),
                ("bare", Jinja::from(bare)),
                (
                    "body_class",
                    Jinja::from(if bare { "report" } else { "drill-down" }),
                ),
                (
                    "back_url",
                    Jinja::from(with_query(
                        &format!("/t/{tenant}"),
                        &without(&["sort", "order", "page", "filter", "disable_aggregation"]),
                    )),
                ),
                ("back_title", Jinja::from("Dashboard")),
                (
                    "report_url",
                    Jinja::from(with_query(&format!("/t/{tenant}/r/{panel_id}"), &query)),
                ),
                ("exports", Jinja::from_serialize(exports)),
                ("aggregation_toggle", Jinja::from_serialize(toggle)),
                ("data_table", Jinja::from_serialize(data_table)),
                (
                    "panel",
                    merge(
                        json!({
                            "title": panel.config.title,
                            "description": panel.config.description,
                            "refresh": refresh,
                            "fragment_url": format!("/t/{tenant}/p/{panel_id}/fragment"),
                            "live": panel.config.kind == crate::config::PanelType::Alerts,
                        }),
                        vec![("html", Jinja::from_safe_string(html))],
                    ),
                ),
            ],
        ),
    )?;
    Ok(Html(page).into_response())
}

/// The points under a drill-down chart: time (tenant clock), series, value.
async fn timeseries_table(
    state: &AppState,
    tenant: &str,
    panel: &str,
    request: &PanelRequest,
    now: i64,
    tz: chrono_tz::Tz,
) -> Value {
    let Ok(data) = state.panels.data(tenant, panel, request, now).await else {
        return Value::Null;
    };
    let Ok(answer) = serde_json::from_slice::<Value>(&data.json) else {
        return Value::Null;
    };
    points_table(&answer, tz, DATA_TABLE_ROWS)
}

/// A timeseries chart alone as SVG or PNG (a custom_image panel's own picture for `.svg`).
async fn chart_image(
    state: &AppState,
    config: &Arc<TenantPanels>,
    tenant: &str,
    panel: &str,
    request: &PanelRequest,
    png: bool,
) -> Result<Response, PageError> {
    let data = state.panels.data(tenant, panel, request, now_ns()).await?;
    let answer: Value =
        serde_json::from_slice(&data.json).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some((content_type, bytes)) = &data.image {
        return Ok((
            [(header::CONTENT_TYPE, content_type.clone())],
            bytes.clone(),
        )
            .into_response());
    }
    if answer["type"] != "timeseries" {
        return Err(ApiError::BadRequest(format!("panel `{panel}` has no chart")).into());
    }
    let options = FragmentOptions {
        tz: config.timezone,
        now_ms: now_ns() / 1_000_000,
        chart_width: 1100,
        chart_height: 420,
        link_path: String::new(),
        query: vec![],
    };
    if png {
        let bytes = state.pages.chart_png(&answer, &options)?;
        return Ok(([(header::CONTENT_TYPE, "image/png")], bytes).into_response());
    }
    let svg = state.pages.chart(&answer, &options)?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}
