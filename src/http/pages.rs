//! Server-rendered pages: `/` (tenants), `/t/{tenant}` and `/t/{tenant}/d/{dashboard}`
//! (dashboards) and `/t/{tenant}/p/{panel}/fragment` (one panel's HTML, for auto-refresh), with
//! the stylesheet and script. The drill-down and report pages are `panel_page.rs`. Panel
//! failures render inside the panel; the page itself still loads.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use minijinja::Value as Jinja;
use serde_json::{Value, json};

use super::AppState;
use super::access::{Access, Caller, Route};
use super::error::PageError;
use super::extract::user_json;
use super::panel_query::PanelQuery;
use super::views::{
    Chrome, DashboardPage, FragmentAt, Heading, PageAt, PanelBox, Size, with_query,
};
use crate::auth::Need;
use crate::config::{DashboardEntry, TenantPanels};
use crate::panels::render_pool::off_workers;
use crate::panels::{PanelError, PanelRequest, kinds};
use crate::render::{APP_JS, FAVICON_SVG, FragmentOptions, app_css};

pub fn routes() -> Vec<Route> {
    let read = Access::Tenant(Need::Read);
    vec![
        Route::get("/", Access::SignedIn, home),
        Route::get("/static/app.css", Access::Public, css),
        Route::get("/static/app.js", Access::Public, js),
        Route::get("/static/favicon.svg", Access::Public, favicon),
        Route::get("/t/{tenant}", read, default_dashboard),
        Route::get("/t/{tenant}/d/{dashboard}", read, dashboard),
        Route::get("/t/{tenant}/p/{panel}/fragment", read, fragment),
    ]
}

pub(super) const DEFAULT_REFRESH_SECS: u64 = 60;

pub(super) fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

pub(super) fn pairs(raw: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The configuration problems banner of a tenant's pages.
pub(super) fn config_errors(state: &AppState, tenant: &str) -> Vec<String> {
    state
        .configs
        .problems(tenant)
        .map(|(p, _)| p.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

/// Static files may be kept a few minutes (every other answer is `no-store`).
const STATIC_CACHE: &str = "public, max-age=300";

async fn css() -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/css; charset=utf-8"),
        (header::CACHE_CONTROL, STATIC_CACHE),
    ];
    (headers, app_css()).into_response()
}

async fn js() -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
        (header::CACHE_CONTROL, STATIC_CACHE),
    ];
    (headers, APP_JS).into_response()
}

async fn favicon() -> Response {
    let headers = [
        (header::CONTENT_TYPE, "image/svg+xml"),
        (header::CACHE_CONTROL, STATIC_CACHE),
    ];
    (headers, FAVICON_SVG).into_response()
}

/// The tenant picker: only the tenants the caller may read.
async fn home(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Html<String>, PageError> {
    let principal = caller.principal()?;
    let configs = state.configs;
    let tenants: Vec<Value> = configs
        .dashboard_tenants()
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

async fn default_dashboard(
    state: State<AppState>,
    caller: Extension<Caller>,
    Path(tenant): Path<String>,
    query: PanelQuery,
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
    PanelQuery(request): PanelQuery,
    RawQuery(raw): RawQuery,
) -> Result<Html<String>, PageError> {
    state.tenant_for_query(&tenant).await?;
    let query = pairs(&raw);
    let path = format!("/t/{tenant}/d/{name}");
    let at = PageAt {
        tenant: &tenant,
        path: &path,
        query: &query,
        dashboard: Some(&name),
    };
    let errors = config_errors(&state, &tenant);
    let Ok(config) = state.panels.tenant_config(&tenant) else {
        // No good configuration yet: the banner says why.
        let page = DashboardPage {
            chrome: Chrome::new(&caller, &at, None, errors),
            title: tenant.clone(),
            dashboard: Heading {
                title: tenant.clone(),
                description: None,
            },
            variables: vec![],
            keep: vec![],
            panels: vec![],
        };
        let html = state
            .pages
            .page("dashboard.html", Jinja::from_serialize(&page))?;
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
    // The page's own dashboard decides the variables its panels read.
    let mut request = request;
    request.dashboard = Some(name.clone());
    let variables = state.panels.variables(&tenant, &name, &request).await?;
    let shown = crate::panels::variables::shown_picked(&variables);
    let entries = board.entries(&config.panels);
    let draw = BoardDraw {
        at: &at,
        request: &request,
        now,
        shown: &shown,
        caller: &caller,
    };
    let boxes = futures::future::join_all(
        entries
            .iter()
            .map(|entry| panel_box(&state, &config, &draw, entry)),
    )
    .await;
    let page = DashboardPage {
        chrome: Chrome::new(&caller, &at, Some(&config), errors),
        title: board.config.name.clone(),
        dashboard: Heading {
            title: board.config.name.clone(),
            description: board.config.description.clone(),
        },
        variables,
        keep: query
            .iter()
            .filter(|(k, _)| !k.starts_with("var-"))
            .cloned()
            .collect(),
        panels: boxes,
    };
    let html = state
        .pages
        .page("dashboard.html", Jinja::from_serialize(&page))?;
    Ok(Html(html))
}

/// What every panel of a dashboard page is drawn with.
#[derive(Clone, Copy)]
struct BoardDraw<'a> {
    at: &'a PageAt<'a>,
    request: &'a PanelRequest,
    now: i64,
    /// Variables' values as titles show them.
    shown: &'a std::collections::BTreeMap<String, String>,
    caller: &'a Caller,
}

/// One placed panel of a dashboard: its box, its fragment drawn at the box's size.
async fn panel_box(
    state: &AppState,
    config: &Arc<TenantPanels>,
    page: &BoardDraw<'_>,
    entry: &DashboardEntry,
) -> PanelBox {
    let BoardDraw {
        at,
        request,
        now,
        shown,
        caller,
    } = *page;
    let (panel, p) = (&entry.panel, &entry.placement);
    let (width, height) = ((100 * p.width).clamp(320, 1200), 90 * p.height + 80);
    let tenant = at.tenant;
    let size = Size { width, height };
    let html = render_fragment(
        state,
        config,
        &FragmentAt {
            tenant,
            panel: &panel.id,
            request,
            query: at.query,
            dashboard: at.dashboard,
            caller,
            now,
            size,
        },
    )
    .await;
    PanelBox {
        id: entry.id.clone(),
        title: crate::panels::variables::substitute(&panel.config.title, shown),
        description: panel.config.description.clone(),
        col: p.col,
        row: p.row,
        width: p.width,
        height: p.height,
        refresh: entry
            .refresh
            .map_or(DEFAULT_REFRESH_SECS, |d| d.0.as_secs().max(1)),
        fragment_url: with_query(
            &format!("/t/{tenant}/p/{}/fragment", panel.id),
            &[
                ("w".to_string(), width.to_string()),
                ("h".to_string(), height.to_string()),
                (
                    "dashboard".to_string(),
                    at.dashboard.unwrap_or_default().to_string(),
                ),
            ],
        ),
        live: kinds::spec(&panel.config.kind).is_some_and(|s| s.live),
        drill_url: with_query(&format!("/t/{tenant}/p/{}", panel.id), at.query),
        html: Jinja::from_safe_string(html),
    }
}

/// One panel's HTML: its fragment (with the action buttons this caller may use and the
/// panel's newest runs), or its error in its own box.
pub(super) async fn render_fragment(
    state: &AppState,
    config: &Arc<TenantPanels>,
    at: &FragmentAt<'_>,
) -> String {
    // A raw chart is downsampled to the pixels it is drawn in.
    let mut request = at.request.clone();
    if request.max_points.is_none() {
        request.max_points = Some(at.size.width.to_string());
    }
    let answer = state
        .panels
        .data(at.tenant, at.panel, &request, at.now)
        .await;
    let actions = super::panel_actions::for_fragment(state, config, at);
    let options = FragmentOptions {
        tz: config.timezone,
        now_ms: at.now / 1_000_000,
        chart_width: at.size.width,
        chart_height: at.size.height,
        link_path: format!("/t/{}/p/{}", at.tenant, at.panel),
        query: at.query.to_vec(),
        row_actions: actions.rows,
    };
    let drawn = match answer {
        Ok(data) => off_workers(move || data.answer.fragment(&options)).await,
        Err(e) => return state.pages.error_fragment(&e.to_string()),
    };
    match drawn {
        Ok(html) => html + &actions.strip,
        Err(e) => state.pages.error_fragment(&e.to_string()),
    }
}

async fn fragment(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, panel)): Path<(String, String)>,
    PanelQuery(request): PanelQuery,
    RawQuery(raw): RawQuery,
) -> Result<Html<String>, PageError> {
    state.tenant_for_query(&tenant).await?;
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
    let dashboard = query
        .iter()
        .find(|(k, _)| k == "dashboard")
        .map(|(_, v)| v.as_str());
    let html = render_fragment(
        &state,
        &config,
        &FragmentAt {
            tenant: &tenant,
            panel: &panel,
            request: &request,
            query: &links,
            dashboard,
            caller: &caller,
            now: now_ns(),
            size: Size { width, height },
        },
    )
    .await;
    Ok(Html(html))
}
