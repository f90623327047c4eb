//! Server-rendered pages: minijinja templates embedded in the binary (`templates/`), the CSS
//! and the one script (`static/`). A panel's HTML fragment is drawn from the same JSON answer
//! the API returns, so pages and API cannot disagree. Pure: values in, HTML out.

use chrono::{DateTime, TimeZone};
use minijinja::{Environment, Value as Jinja};
use serde_json::{Value, json};

use super::RenderError;
use super::chart::{ChartSeries, TimeChart, format_value, timeseries_svg};

pub const APP_JS: &str = include_str!("static/app.js");
pub const FAVICON_SVG: &str = include_str!("static/favicon.svg");
const APP_CSS: &str = include_str!("static/app.css");

/// The stylesheet: the hand-written rules plus the grid placement classes (built once).
pub fn app_css() -> &'static str {
    static CSS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSS.get_or_init(|| {
        let mut css = String::from(APP_CSS);
        for n in 1..=12 {
            css.push_str(&format!(".c{n} {{ grid-column-start: {n}; }} .w{n} {{ grid-column-end: span {n}; }} .h{n} {{ grid-row-end: span {n}; }}\n"));
        }
        for n in 1..=48 {
            css.push_str(&format!(".r{n} {{ grid-row-start: {n}; }}\n"));
        }
        css
    })
}

/// How to draw one fragment.
#[derive(Debug, Clone)]
pub struct FragmentOptions {
    pub tz: chrono_tz::Tz,
    pub now_ms: i64,
    pub chart_width: u32,
    pub chart_height: u32,
    /// Where table links (sort, pages, filter) point.
    pub link_path: String,
    /// The request's parameters, kept by every link.
    pub query: Vec<(String, String)>,
}

pub struct Pages {
    env: Environment<'static>,
}

impl Default for Pages {
    fn default() -> Self {
        Self::new()
    }
}

impl Pages {
    pub fn new() -> Self {
        let mut env = super::template_environment();
        // Page templates are part of the binary; a mistake in one is a bug caught by the tests.
        for (name, source) in [
            ("base.html", include_str!("templates/base.html")),
            ("home.html", include_str!("templates/home.html")),
            ("dashboard.html", include_str!("templates/dashboard.html")),
            ("panel_page.html", include_str!("templates/panel_page.html")),
            ("fragment.html", include_str!("templates/fragment.html")),
            ("login.html", include_str!("templates/login.html")),
            ("mfa.html", include_str!("templates/mfa.html")),
            ("account.html", include_str!("templates/account.html")),
            ("admin.html", include_str!("templates/admin.html")),
            (
                "tenant_admin.html",
                include_str!("templates/tenant_admin.html"),
            ),
            ("audit.html", include_str!("templates/audit.html")),
            ("alerts.html", include_str!("templates/alerts.html")),
        ] {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "page template does not compile");
            }
        }
        Self { env }
    }

    /// A whole page; `context` is the template's data (fragments already rendered, marked safe).
    pub fn page(&self, name: &str, context: Jinja) -> Result<String, RenderError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(context))
            .map_err(|e| RenderError::Template(format!("{name}: {e}")))
    }

    /// The HTML of one panel from its JSON answer.
    pub fn fragment(
        &self,
        answer: &Value,
        options: &FragmentOptions,
    ) -> Result<String, RenderError> {
        let context = fragment_context(answer, options)?;
        self.page("fragment.html", context)
    }

    /// A timeseries answer's chart alone (the `.svg` route).
    pub fn chart(&self, answer: &Value, options: &FragmentOptions) -> Result<String, RenderError> {
        chart_svg(answer, options)
    }

    /// The same chart as PNG (the `.png` route).
    pub fn chart_png(
        &self,
        answer: &Value,
        options: &FragmentOptions,
    ) -> Result<Vec<u8>, RenderError> {
        chart_png(answer, options)
    }

    /// A panel that failed: its message in its own box.
    pub fn error_fragment(&self, message: &str) -> String {
        self.page("fragment.html", minijinja::context! { error => message })
            .unwrap_or_else(|_| String::from("<div class=\"panel-error\">error</div>"))
    }
}

fn ms_of(rfc3339: &Value) -> i64 {
    rfc3339
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or(0, |t| t.timestamp_millis())
}

fn link(path: &str, query: &[(String, String)], set: &[(&str, String)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in query {
        if !set.iter().any(|(name, _)| name == k) {
            serializer.append_pair(k, v);
        }
    }
    for (k, v) in set {
        serializer.append_pair(k, v);
    }
    format!("{path}?{}", serializer.finish())
}

/// "3 min ago", "2 h ago", "just now".
pub fn ago(then_ms: i64, now_ms: i64) -> String {
    let secs = (now_ms - then_ms) / 1000;
    match secs {
        s if s < 10 => "just now".into(),
        s if s < 60 => format!("{s} s ago"),
        s if s < 3_600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3_600),
        s => format!("{} d ago", s / 86_400),
    }
}

/// The chart of a timeseries answer, as SVG.
pub fn chart_svg(answer: &Value, o: &FragmentOptions) -> Result<String, RenderError> {
    with_chart(answer, o, timeseries_svg)
}

/// The chart of a timeseries answer, as PNG.
pub fn chart_png(answer: &Value, o: &FragmentOptions) -> Result<Vec<u8>, RenderError> {
    with_chart(answer, o, crate::render::timeseries_png)
}

fn with_chart<T>(
    answer: &Value,
    o: &FragmentOptions,
    render: impl Fn(&TimeChart<'_>) -> Result<T, String>,
) -> Result<T, RenderError> {
    let series: Vec<ChartSeries> = answer["series"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| ChartSeries {
            name: s["name"].as_str().unwrap_or_default().to_string(),
            points: s["points"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| (p[0].as_i64().unwrap_or_default(), p[1].as_f64()))
                .collect(),
        })
        .collect();
    let display = &answer["display"];
    let colors: Vec<String> = match display["colors"].as_array() {
        Some(list) => list
            .iter()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect(),
        None => display["line_color"]
            .as_str()
            .map(str::to_string)
            .into_iter()
            .collect(),
    };
    let y_range = display["y_axis_range"]
        .as_array()
        .and_then(|r| Some([r.first()?.as_f64()?, r.get(1)?.as_f64()?]));
    let step_ms = answer["bucket"]
        .as_str()
        .filter(|b| *b != "raw")
        .and_then(|b| humantime::parse_duration(b).ok())
        .map(|d| d.as_millis() as i64);
    let chart = TimeChart {
        series: &series,
        from_ms: ms_of(&answer["range"]["from"]),
        to_ms: ms_of(&answer["range"]["to"]),
        step_ms,
        y_label: display["y_axis_label"].as_str(),
        y_range,
        colors: &colors,
        fill: display["fill_area"].as_bool().unwrap_or(false),
        tz: o.tz,
        width: o.chart_width,
        height: o.chart_height,
    };
    render(&chart).map_err(RenderError::Template)
}

fn fragment_context(answer: &Value, o: &FragmentOptions) -> Result<Jinja, RenderError> {
    let mut context = answer.clone();
    let Some(map) = context.as_object_mut() else {
        return Ok(Jinja::from_serialize(&context));
    };
    let kind = answer["type"].as_str().unwrap_or_default();
    let mut safe: Vec<(&str, String)> = vec![];
    match kind {
        "timeseries" => {
            let empty = answer["series"].as_array().is_none_or(|list| {
                list.iter()
                    .all(|s| s["points"].as_array().is_none_or(Vec::is_empty))
            });
            map.insert("empty".into(), json!(empty));
            safe.push(("chart", chart_svg(answer, o)?));
        }
        "kpi" => {
            if let Some(delta) = answer["delta"].as_f64() {
                let percent = answer["delta_percent"]
                    .as_f64()
                    .map(|p| {
                        format!(
                            " ({}{}%)",
                            if p >= 0.0 { "+" } else { "" },
                            format_value((p * 10.0).round() / 10.0)
                        )
                    })
                    .unwrap_or_default();
                map.insert(
                    "delta_text".into(),
                    json!(format!(
                        "{}{delta:.decimals$}{percent}",
                        if delta >= 0.0 { "+" } else { "" },
                        decimals = answer["decimals"].as_u64().unwrap_or(2) as usize
                    )),
                );
                map.insert(
                    "delta_class".into(),
                    json!(if delta >= 0.0 { "up" } else { "down" }),
                );
            }
        }
        "alerts" => {
            // The tenant's alerts page, from the panel's own link `/t/{tenant}/...`.
            let tenant_root: String = o.link_path.split('/').take(3).collect::<Vec<_>>().join("/");
            map.insert("alerts_url".into(), json!(format!("{tenant_root}/alerts")));
        }
        "health_status" => {
            if let Some(services) = map.get_mut("services").and_then(Value::as_array_mut) {
                for s in services {
                    let last = s["last_checked"].as_i64();
                    s["ago"] = json!(last.map_or("never".to_string(), |t| ago(t, o.now_ms)));
                }
            }
        }
        "table" => {
            let sort = answer["sort"].as_str();
            let descending = answer["order"] == "desc";
            let sortable = answer["sortable"].as_bool().unwrap_or(true);
            let columns: Vec<Value> = answer["columns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let name = c["name"].as_str().unwrap_or_default();
                    let sorted = sort == Some(name);
                    let next = if sorted && !descending { "desc" } else { "asc" };
                    json!({
                        "display": c["display"],
                        "sorted": sorted,
                        "arrow": if descending { "▼" } else { "▲" },
                        "sort_url": sortable.then(|| link(&o.link_path, &o.query, &[("sort", name.to_string()), ("order", next.to_string()), ("page", "1".into())])),
                    })
                })
                .collect();
            let page = answer["page"].as_u64().unwrap_or(1);
            let pages = answer["total_pages"].as_u64().unwrap_or(1);
            let hidden: Vec<Value> = o
                .query
                .iter()
                .filter(|(k, _)| k != "filter" && k != "page")
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
            let filter = o
                .query
                .iter()
                .find(|(k, _)| k == "filter")
                .map(|(_, v)| v.clone());
            map.insert(
                "table".into(),
                json!({
                    "columns": columns,
                    "action": o.link_path,
                    "hidden": hidden,
                    "filter": filter,
                    "prev_url": (page > 1).then(|| link(&o.link_path, &o.query, &[("page", (page - 1).to_string())])),
                    "next_url": (page < pages).then(|| link(&o.link_path, &o.query, &[("page", (page + 1).to_string())])),
                }),
            );
        }
        "custom_image" => safe.push((
            "image",
            answer["image"].as_str().unwrap_or_default().to_string(),
        )),
        // Rendered by the panel's own template with auto-escaping already.
        "custom_template" => safe.push((
            "html",
            answer["html"].as_str().unwrap_or_default().to_string(),
        )),
        _ => {}
    }
    let mut jinja: std::collections::BTreeMap<String, Jinja> = map
        .iter()
        .map(|(k, v)| (k.clone(), Jinja::from_serialize(v)))
        .collect();
    for (key, html) in safe {
        jinja.insert(key.to_string(), Jinja::from_safe_string(html));
    }
    Ok(Jinja::from_iter(jinja))
}

/// A timeseries answer's points as a table (time on the tenant's clock, series, value), in
/// time order, at most `limit` rows: what the drill-down shows under its chart.
pub fn points_table(answer: &Value, tz: chrono_tz::Tz, limit: usize) -> Value {
    let mut rows = vec![];
    for series in answer["series"].as_array().into_iter().flatten() {
        for point in series["points"].as_array().into_iter().flatten() {
            rows.push((
                point[0].as_i64().unwrap_or_default(),
                series["name"].as_str().unwrap_or_default().to_string(),
                point[1].as_f64(),
            ));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let truncated = rows.len() > limit;
    let rows: Vec<Value> = rows
        .into_iter()
        .take(limit)
        .map(|(t, s, v)| {
            json!([
                local_time(t, tz),
                s,
                v.map(format_value).unwrap_or_default()
            ])
        })
        .collect();
    json!({ "columns": ["Time", "Series", "Value"], "rows": rows, "truncated": truncated })
}

/// Time as the tenant reads it: `2024-01-01 12:00`.
pub fn local_time(ms: i64, tz: chrono_tz::Tz) -> String {
    tz.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> FragmentOptions {
        FragmentOptions {
            tz: chrono_tz::UTC,
            now_ms: 1_704_110_400_000,
            chart_width: 600,
            chart_height: 260,
            link_path: "/t/acme/p/errors".into(),
            query: vec![
                ("from".into(), "now-1h".into()),
                ("filter".into(), "x".into()),
            ],
        }
    }

    #[test]
    fn every_template_compiles_and_renders() {
        let pages = Pages::new();
        for name in [
            "home.html",
            "dashboard.html",
            "panel_page.html",
            "fragment.html",
        ] {
            let result = pages.page(
                name,
                minijinja::context! {
                    title => "t",
                    dashboard => minijinja::context! { title => "d" },
                    panel => minijinja::context! { title => "p" },
                },
            );
            assert!(result.is_ok(), "{name}: {result:?}");
        }
    }

    #[test]
    fn escapes_data_but_not_rendered_html() {
        let pages = Pages::new();
        let answer = json!({"type": "health_status", "services": [
            {"name": "<b>api</b>", "color": "#10B981", "label": "Healthy", "last_checked": 1_704_110_220_000_i64, "error": null}
        ]});
        let html = pages
            .fragment(&answer, &options())
            .unwrap()
            .replace("&#x2f;", "/");
        assert!(html.contains("&lt;b&gt;api&lt;/b&gt;"), "{html}");
        assert!(html.contains("checked 3 min ago"), "{html}");
        let template = json!({"type": "custom_template", "html": "<p>ok</p>"});
        assert!(
            pages
                .fragment(&template, &options())
                .unwrap()
                .contains("<p>ok</p>")
        );
    }

    #[test]
    fn points_table_is_in_time_order_and_capped() {
        let answer = json!({"series": [
            {"name": "b", "points": [[60_000, 2.0], [0, 1.0]]},
            {"name": "a", "points": [[0, 3.5], [120_000, null]]}
        ]});
        let table = points_table(&answer, chrono_tz::UTC, 3);
        assert_eq!(
            table["rows"],
            json!([
                ["1970-01-01 00:00:00", "a", "3.5"],
                ["1970-01-01 00:00:00", "b", "1"],
                ["1970-01-01 00:01:00", "b", "2"]
            ])
        );
        assert_eq!(table["truncated"], true);
    }

    #[test]
    fn table_links_keep_the_range_and_toggle_the_order() {
        let answer = json!({"type": "table", "sort": "time", "order": "asc", "sortable": true,
            "columns": [{"name": "time", "display": "Time"}, {"name": "service", "display": "Service"}],
            "text": [["2024", "api"]], "page": 2, "total_pages": 3, "total_rows": 7});
        let html = Pages::new()
            .fragment(&answer, &options())
            .unwrap()
            .replace("&#x2f;", "/");
        assert!(
            html.contains(
                "/t/acme/p/errors?from=now-1h&amp;filter=x&amp;sort=time&amp;order=desc&amp;page=1"
            ),
            "{html}"
        );
        assert!(html.contains("page=1\" rel=\"prev\""), "{html}");
        assert!(html.contains("page=3\" rel=\"next\""), "{html}");
        assert!(
            html.contains("value=\"x\""),
            "the filter box keeps its text"
        );
    }
}
