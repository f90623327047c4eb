//! `/t/{tenant}/p/{panel}` (drill-down: navigation, the aggregation toggle, exports and the
//! points under a chart), `/t/{tenant}/r/{panel}` (report: the panel alone) and
//! `/t/{tenant}/p/{panel}.svg` / `.png` (a timeseries chart alone).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use minijinja::Value as Jinja;
use serde_json::Value;

use super::access::{Access, Caller, Route};
use super::error::PageError;
use super::pages::{DEFAULT_REFRESH_SECS, config_errors, now_ns, pairs, render_fragment};
use super::panel_query::PanelQuery;
use super::views::{Chrome, FragmentAt, Link, PageAt, PanelBox, PanelPage, Size, with_query};
use super::{ApiError, AppState};
use crate::auth::Need;
use crate::config::{LoadedPanel, TenantPanels};
use crate::panels::render_pool::off_workers;
use crate::panels::{PanelAnswer, PanelError, PanelRequest, kinds};
use crate::render::FragmentOptions;

pub fn routes() -> Vec<Route> {
    let read = Access::Tenant(Need::Read);
    vec![
        Route::get("/t/{tenant}/p/{panel}", read, panel_page),
        Route::get("/t/{tenant}/r/{panel}", read, report),
    ]
}

const DATA_TABLE_ROWS: usize = 1_000;
const PAGE_CHART: Size = Size {
    width: 1100,
    height: 420,
};

async fn report(
    state: State<AppState>,
    caller: Extension<Caller>,
    path: Path<(String, String)>,
    query: PanelQuery,
    raw: RawQuery,
) -> Result<Response, PageError> {
    single_panel(state, caller, path, query, raw, true).await
}

async fn panel_page(
    state: State<AppState>,
    caller: Extension<Caller>,
    path: Path<(String, String)>,
    query: PanelQuery,
    raw: RawQuery,
) -> Result<Response, PageError> {
    single_panel(state, caller, path, query, raw, false).await
}

/// Drill-down (with navigation, aggregation toggle and the data) or report (the panel alone).
async fn single_panel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((tenant, panel_id)): Path<(String, String)>,
    PanelQuery(request): PanelQuery,
    RawQuery(raw): RawQuery,
    bare: bool,
) -> Result<Response, PageError> {
    state.tenant_for_query(&tenant).await?;
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
    let path = format!("/t/{tenant}/p/{panel_id}");
    let at = PageAt {
        tenant: &tenant,
        path: &path,
        query: &query,
        dashboard: None,
    };
    let now = now_ns();
    let dashboard = query
        .iter()
        .find(|(k, _)| k == "dashboard")
        .map(|(_, v)| v.as_str());
    let html = render_fragment(
        &state,
        &config,
        &FragmentAt {
            tenant: &tenant,
            panel: &panel_id,
            request: &request,
            query: &query,
            dashboard,
            caller: &caller,
            now,
            size: PAGE_CHART,
        },
    )
    .await;
    let is_timeseries = kinds::spec(&panel.config.kind).is_some_and(|s| s.chart);
    let data_table = if is_timeseries && !bare {
        timeseries_table(&state, &tenant, &panel_id, &request, now, config.timezone).await
    } else {
        Value::Null
    };
    let page = PanelPage {
        chrome: Chrome::new(&caller, &at, Some(&config), config_errors(&state, &tenant)),
        title: panel.config.title.clone(),
        bare,
        body_class: if bare { "report" } else { "drill-down" },
        back_url: with_query(
            &format!("/t/{tenant}"),
            &without(
                &query,
                &["sort", "order", "page", "filter", "disable_aggregation"],
            ),
        ),
        back_title: "Dashboard",
        report_url: with_query(&format!("/t/{tenant}/r/{panel_id}"), &query),
        exports: exports(&tenant, &panel_id, &query),
        aggregation_toggle: is_timeseries.then(|| aggregation_toggle(&at, &request)),
        data_table,
        panel: page_box(&at, &panel, html),
    };
    let page = state
        .pages
        .page("panel_page.html", Jinja::from_serialize(&page))?;
    Ok(Html(page).into_response())
}

fn without(query: &[(String, String)], names: &[&str]) -> Vec<(String, String)> {
    query
        .iter()
        .filter(|(k, _)| !names.contains(&k.as_str()))
        .cloned()
        .collect()
}

/// CSV, JSON and Parquet downloads of the panel's rows in the page's range.
fn exports(tenant: &str, panel_id: &str, query: &[(String, String)]) -> Vec<Link> {
    let route = format!("/api/v1/tenants/{tenant}/panels/{panel_id}/export");
    ["csv", "json", "parquet"]
        .iter()
        .map(|f| {
            let mut q = without(query, &["format", "page", "page_size"]);
            q.push(("format".into(), f.to_string()));
            Link {
                label: f.to_uppercase(),
                url: with_query(&route, &q),
            }
        })
        .collect()
}

/// Raw rows ↔ aggregated buckets, keeping everything else.
fn aggregation_toggle(at: &PageAt<'_>, request: &PanelRequest) -> Link {
    let disabled = request.disable_aggregation().unwrap_or(false);
    let mut q = without(at.query, &["disable_aggregation"]);
    if !disabled {
        q.push(("disable_aggregation".into(), "true".into()));
    }
    Link {
        label: if disabled {
            "Aggregate"
        } else {
            "Show raw data"
        }
        .into(),
        url: with_query(at.path, &q),
    }
}

/// The panel's box on its own page (no grid place).
fn page_box(at: &PageAt<'_>, panel: &LoadedPanel, html: String) -> PanelBox {
    PanelBox {
        id: panel.id.clone(),
        title: panel.config.title.clone(),
        description: panel.config.description.clone(),
        col: 1,
        row: 1,
        width: 12,
        height: 1,
        refresh: panel
            .config
            .refresh_interval
            .map_or(DEFAULT_REFRESH_SECS, |d| d.0.as_secs().max(1)),
        fragment_url: format!("{}/fragment", at.path),
        live: kinds::spec(&panel.config.kind).is_some_and(|s| s.live),
        drill_url: at.path.to_string(),
        html: Jinja::from_safe_string(html),
    }
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
    match state.panels.data(tenant, panel, request, now).await {
        Ok(data) => match &data.answer {
            PanelAnswer::Timeseries(answer) => answer.points_table(tz, DATA_TABLE_ROWS),
            _ => Value::Null,
        },
        Err(_) => Value::Null,
    }
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
    match &data.answer {
        PanelAnswer::CustomImage(image) => {
            return Ok((
                [(header::CONTENT_TYPE, image.content_type.clone())],
                image.bytes.clone(),
            )
                .into_response());
        }
        PanelAnswer::Timeseries(_) => {}
        _ => return Err(ApiError::BadRequest(format!("panel `{panel}` has no chart")).into()),
    };
    let options = FragmentOptions {
        tz: config.timezone,
        now_ms: now_ns() / 1_000_000,
        chart_width: PAGE_CHART.width,
        chart_height: PAGE_CHART.height,
        link_path: String::new(),
        query: vec![],
        row_actions: vec![],
    };
    let draw = move || match &data.answer {
        PanelAnswer::Timeseries(answer) if png => answer.chart_png(&options),
        PanelAnswer::Timeseries(answer) => answer.chart_svg(&options).map(String::into_bytes),
        _ => Ok(Vec::new()),
    };
    let bytes = off_workers(draw).await?;
    let content_type = if png { "image/png" } else { "image/svg+xml" };
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}
