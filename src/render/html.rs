//! Server-rendered pages: minijinja templates embedded in the binary (`templates/`), the CSS
//! and the one script (`static/`), and the means panel kinds draw their fragments with (each
//! kind's template is its own; the answer it draws is the one the API returns, so pages and
//! API cannot disagree). Pure: values in, HTML out.

use chrono::TimeZone;
use minijinja::{Environment, Value as Jinja};

use super::RenderError;

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
    /// Buttons on each row of a table: the actions this viewer may run.
    pub row_actions: Vec<super::RowAction>,
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
            (
                "panel_error.html",
                include_str!("templates/panel_error.html"),
            ),
            ("login.html", include_str!("templates/login.html")),
            ("mfa.html", include_str!("templates/mfa.html")),
            ("signed_in.html", include_str!("templates/signed_in.html")),
            ("account.html", include_str!("templates/account.html")),
            ("admin.html", include_str!("templates/admin.html")),
            (
                "tenant_admin.html",
                include_str!("templates/tenant_admin.html"),
            ),
            ("audit.html", include_str!("templates/audit.html")),
            ("alerts.html", include_str!("templates/alerts.html")),
            ("notice.html", include_str!("templates/notice.html")),
            (
                "subscriptions.html",
                include_str!("templates/subscriptions.html"),
            ),
            (
                "action_confirm.html",
                include_str!("templates/action_confirm.html"),
            ),
            ("action_run.html", include_str!("templates/action_run.html")),
            ("api_docs.html", include_str!("templates/api_docs.html")),
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

    /// A panel that failed: its message in its own box.
    pub fn error_fragment(&self, message: &str) -> String {
        self.page("panel_error.html", minijinja::context! { error => message })
            .unwrap_or_else(|_| String::from("<div class=\"panel-error\">error</div>"))
    }
}

/// A link to `path` that keeps the request's parameters, with `set` replacing or adding some.
pub fn link(path: &str, query: &[(String, String)], set: &[(&str, String)]) -> String {
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

/// The environment one panel kind's fragment template renders in: the page templates' rules,
/// and the template's last newline kept (fragments are placed inside a page's box).
pub fn fragment_environment(name: &'static str, source: &'static str) -> Environment<'static> {
    let mut env = super::template_environment();
    env.set_keep_trailing_newline(true);
    // Fragment templates are part of the binary; a mistake in one is a bug the tests catch.
    if let Err(e) = env.add_template(name, source) {
        tracing::error!(template = name, error = %e, "fragment template does not compile");
    }
    env
}

/// Renders `name` from an environment made by [`fragment_environment`].
pub fn render_fragment(
    env: &Environment<'static>,
    name: &str,
    context: Jinja,
) -> Result<String, RenderError> {
    env.get_template(name)
        .and_then(|t| t.render(context))
        .map_err(|e| RenderError::Template(format!("{name}: {e}")))
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

    #[test]
    fn every_template_compiles_and_renders() {
        let pages = Pages::new();
        for name in ["home.html", "dashboard.html", "panel_page.html"] {
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
        let error = pages.error_fragment("<b>boom</b>");
        assert!(error.contains("&lt;b&gt;boom"), "{error}");
    }

    #[test]
    fn links_keep_the_query_and_replace_what_they_set() {
        let query = vec![
            ("from".to_string(), "now-1h".to_string()),
            ("page".to_string(), "3".to_string()),
        ];
        assert_eq!(
            link("/t/a/p/x", &query, &[("page", "1".into())]),
            "/t/a/p/x?from=now-1h&page=1"
        );
        assert_eq!(ago(0, 5_000), "just now");
        assert_eq!(ago(0, 180_000), "3 min ago");
        assert_eq!(ago(0, 2 * 86_400_000), "2 d ago");
    }
}
