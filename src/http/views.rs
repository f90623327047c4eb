//! What page templates are given, as typed view models: the header every tenant page shares
//! ([`Chrome`]), a dashboard's grid of panel boxes, a drill-down or report page. Built from the
//! request and the tenant's configuration; rendered by `render::Pages`.

use minijinja::Value as Jinja;
use serde::Serialize;
use serde_json::Value;

use super::access::Caller;
use super::extract::user_json;
use crate::config::TenantPanels;
use crate::panels::PanelRequest;

const PRESETS: [&str; 6] = ["15m", "1h", "6h", "24h", "7d", "30d"];

/// `path?query`, or `path` alone when there is no query.
pub fn with_query(path: &str, query: &[(String, String)]) -> String {
    if query.is_empty() {
        return path.to_string();
    }
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in query {
        s.append_pair(k, v);
    }
    format!("{path}?{}", s.finish())
}

/// `text` as one path segment: everything but letters, digits and `-._~` percent-encoded.
pub fn path_segment(text: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

/// The header of every tenant page: who is signed in, the tenant, its dashboards, the range
/// picker and the configuration problems banner.
#[derive(Serialize)]
pub struct Chrome {
    user: Option<Value>,
    tenant: TenantTitle,
    dashboards: Vec<DashboardLink>,
    range: RangeControls,
    config_errors: Vec<String>,
}

#[derive(Serialize)]
struct TenantTitle {
    name: String,
    title: String,
}

/// A dashboard in the picker; `current` marks the page's own.
#[derive(Serialize)]
struct DashboardLink {
    title: String,
    url: String,
    current: bool,
}

/// A button-like link: an export, the aggregation toggle.
#[derive(Serialize)]
pub struct Link {
    pub label: String,
    pub url: String,
}

#[derive(Serialize)]
struct RangeControls {
    presets: Vec<Preset>,
    from: String,
    to: String,
    hidden: Vec<Hidden>,
}

#[derive(Serialize)]
struct Preset {
    label: &'static str,
    url: String,
    current: bool,
}

#[derive(Serialize)]
struct Hidden {
    name: String,
    value: String,
}

/// Where a tenant page is and what it was asked.
pub struct PageAt<'a> {
    pub tenant: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub dashboard: Option<&'a str>,
}

impl Chrome {
    pub fn new(
        caller: &Caller,
        at: &PageAt<'_>,
        config: Option<&TenantPanels>,
        config_errors: Vec<String>,
    ) -> Self {
        let tenant = at.tenant;
        let dashboards = config
            .map(|c| {
                c.dashboards
                    .values()
                    .map(|d| DashboardLink {
                        title: d.config.name.clone(),
                        url: format!("/t/{tenant}/d/{}", d.name),
                        current: Some(d.name.as_str()) == at.dashboard,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let param = |name: &str| {
            at.query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let (from, to) = (param("from"), param("to"));
        let keep: Vec<(String, String)> = at
            .query
            .iter()
            .filter(|(k, _)| k != "from" && k != "to" && k != "page")
            .cloned()
            .collect();
        let presets = PRESETS
            .iter()
            .map(|p| {
                let mut q = keep.clone();
                q.push(("from".into(), format!("now-{p}")));
                q.push(("to".into(), "now".into()));
                let current =
                    from.as_deref() == Some(&format!("now-{p}")) || (from.is_none() && *p == "24h");
                Preset {
                    label: p,
                    url: with_query(at.path, &q),
                    current,
                }
            })
            .collect();
        let hidden = keep
            .into_iter()
            .map(|(name, value)| Hidden { name, value })
            .collect();
        Self {
            user: caller
                .principal
                .as_deref()
                .map(|p| user_json(p, Some(tenant))),
            tenant: TenantTitle {
                name: tenant.to_string(),
                title: config
                    .and_then(|c| c.settings.name.clone())
                    .unwrap_or_else(|| tenant.to_string()),
            },
            dashboards,
            range: RangeControls {
                presets,
                from: from.unwrap_or_else(|| "now-24h".into()),
                to: to.unwrap_or_else(|| "now".into()),
                hidden,
            },
            config_errors,
        }
    }
}

/// A page's heading.
#[derive(Serialize)]
pub struct Heading {
    pub title: String,
    pub description: Option<String>,
}

/// `dashboard.html`.
#[derive(Serialize)]
pub struct DashboardPage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub title: String,
    pub dashboard: Heading,
    /// The dashboard's variable selectors, with what is picked.
    pub variables: Vec<crate::panels::variables::Picked>,
    /// The query parameters the selector form keeps (range and the like), as hidden inputs.
    pub keep: Vec<(String, String)>,
    pub panels: Vec<PanelBox>,
}

/// One panel's box on a page: its place, refresh and rendered HTML.
#[derive(Serialize)]
pub struct PanelBox {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub col: u32,
    pub row: u32,
    pub width: u32,
    pub height: u32,
    /// Seconds between refreshes.
    pub refresh: u64,
    /// Refreshed fragments keep the size the page drew them at.
    pub fragment_url: String,
    /// Alert panels also refresh when the page hears of an alert change.
    pub live: bool,
    pub drill_url: String,
    /// The fragment, already rendered and escaped.
    pub html: Jinja,
}

/// `panel_page.html`: a drill-down, or a report (`bare`).
#[derive(Serialize)]
pub struct PanelPage {
    #[serde(flatten)]
    pub chrome: Chrome,
    pub title: String,
    pub bare: bool,
    pub body_class: &'static str,
    pub back_url: String,
    pub back_title: &'static str,
    pub report_url: String,
    pub exports: Vec<Link>,
    pub aggregation_toggle: Option<Link>,
    pub data_table: Value,
    pub panel: PanelBox,
}

/// The pixel size a chart is drawn at.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

/// One panel fragment to draw: which, for whom, under which page parameters, at what size.
pub struct FragmentAt<'a> {
    pub tenant: &'a str,
    pub panel: &'a str,
    pub request: &'a PanelRequest,
    /// The page's parameters, kept by the fragment's links.
    pub query: &'a [(String, String)],
    /// The dashboard the fragment sits on (action pages lead back to it).
    pub dashboard: Option<&'a str>,
    pub caller: &'a Caller,
    pub now: i64,
    pub size: Size,
}
