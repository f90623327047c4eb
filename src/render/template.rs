//! The minijinja environment custom_template panels render with. HTML is auto-escaped for every
//! template, whatever its name, because panel templates come from YAML, not from `.html` files.

use minijinja::{AutoEscape, Environment, UndefinedBehavior};

/// The environment used both to validate templates at load and to render them.
pub fn template_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    // A misspelt variable shows as empty rather than failing a whole dashboard, as in Grafana.
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env
}

/// Renders `source` with `context`; errors carry minijinja's line (1-based, in the template).
pub fn render_template(
    source: &str,
    context: &serde_json::Value,
) -> Result<String, (Option<usize>, String)> {
    render_with(&template_environment(), source, context)
}

/// Renders a value that its caller escapes for where it goes (a URL parameter): no HTML
/// escaping here, which would change the value itself.
pub fn render_text(
    source: &str,
    context: &serde_json::Value,
) -> Result<String, (Option<usize>, String)> {
    let mut env = template_environment();
    env.set_auto_escape_callback(|_| AutoEscape::None);
    render_with(&env, source, context)
}

fn render_with(
    env: &Environment<'static>,
    source: &str,
    context: &serde_json::Value,
) -> Result<String, (Option<usize>, String)> {
    let template = env
        .template_from_str(source)
        .map_err(|e| (e.line(), e.detail().unwrap_or("syntax error").to_string()))?;
    template.render(context).map_err(|e| {
        (
            e.line(),
            e.detail()
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html_and_reports_lines() {
        let out = render_template(
            "<b>{{ name }}</b>",
            &serde_json::json!({"name": "<script>"}),
        )
        .unwrap();
        assert_eq!(out, "<b>&lt;script&gt;</b>");
        let (line, _) = render_template("ok\n{% if %}", &serde_json::json!({})).unwrap_err();
        assert_eq!(line, Some(2));
    }
}
