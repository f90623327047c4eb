//! The text of a panel action: its URL, body and confirmation rendered from templates over the
//! row, each value escaped for where it lands — percent-encoded in a URL (so a value cannot add
//! a path segment, a query or a host), a JSON value in a JSON body (so `{{ row.vm }}` is a
//! quoted, escaped string), HTML-escaped in a confirmation. Which escaping applies goes by the
//! template's name: `*.url`, `*.json`, `*.html`, anything else none.

use std::collections::BTreeSet;

use minijinja::{AutoEscape, Environment, Output, State, UndefinedBehavior, Value};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters.
const URL_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The environment action templates compile and render in. Undefined values are errors: a
/// URL missing its VM must not be called.
pub fn action_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| match name.rsplit('.').next().unwrap_or("") {
        "url" => AutoEscape::Custom("url"),
        "json" => AutoEscape::Json,
        "html" => AutoEscape::Html,
        _ => AutoEscape::None,
    });
    env.set_formatter(format_value);
    env
}

fn format_value(
    out: &mut Output<'_>,
    state: &State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if state.auto_escape() != AutoEscape::Custom("url") || value.is_safe() {
        return minijinja::escape_formatter(out, state, value);
    }
    let text = value.to_string();
    // `.` and `..` are path steps however they are encoded (`%2e%2e` too): refuse them.
    if text.is_empty() || text.chars().all(|c| c == '.') {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("{text:?} cannot stand in a URL"),
        ));
    }
    write!(out, "{}", utf8_percent_encode(&text, URL_VALUE)).map_err(minijinja::Error::from)
}

/// Renders template `source` under `name` (which picks the escaping) with `context`.
pub fn render_action_text(
    name: &str,
    source: &str,
    context: &serde_json::Value,
) -> Result<String, String> {
    let mut env = action_environment();
    env.add_template(name, source).map_err(describe)?;
    env.get_template(name)
        .and_then(|t| t.render(context))
        .map_err(describe)
}

/// Whether `source` compiles; the error names the template's line.
pub fn check_action_text(name: &str, source: &str) -> Result<(), (Option<usize>, String)> {
    let mut env = action_environment();
    env.add_template(name, source)
        .map_err(|e| (e.line(), e.detail().unwrap_or("syntax error").to_string()))
}

/// The row columns a template reads (`row.vm` → `vm`).
pub fn row_fields(source: &str) -> BTreeSet<String> {
    let mut env = action_environment();
    if env.add_template("t", source).is_err() {
        return BTreeSet::new();
    }
    let Ok(template) = env.get_template("t") else {
        return BTreeSet::new();
    };
    template
        .undeclared_variables(true)
        .into_iter()
        .filter_map(|v| {
            v.strip_prefix("row.")
                .map(|f| f.split('.').next().unwrap_or(f).to_string())
        })
        .collect()
}

fn describe(e: minijinja::Error) -> String {
    let detail = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    match e.line() {
        Some(line) => format!("line {line}: {detail}"),
        None => detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> serde_json::Value {
        json!({"row": {"vm": "a b/../c?x=1#f", "n": 3, "q": "say \"hi\"\n</script>"}, "user": "ed"})
    }

    #[test]
    fn url_values_cannot_add_segments_queries_or_hosts() {
        let url = render_action_text(
            "u.url",
            "https://agent.example/vms/{{ row.vm }}/restart?n={{ row.n }}",
            &context(),
        )
        .unwrap();
        assert_eq!(
            url,
            "https://agent.example/vms/a%20b%2F..%2Fc%3Fx%3D1%23f/restart?n=3"
        );
        let err = render_action_text(
            "u.url",
            "https://a/{{ row.vm }}",
            &json!({"row": {"vm": ".."}}),
        )
        .unwrap_err();
        assert!(err.contains("cannot stand in a URL"), "{err}");
        let err = render_action_text("u.url", "https://a/{{ row.gone }}", &context()).unwrap_err();
        assert!(err.contains("undefined"), "{err}");
    }

    #[test]
    fn json_values_are_json_whether_or_not_tojson_is_written() {
        let body = render_action_text(
            "b.json",
            r#"{"q": {{ row.q }}, "by": {{ user | tojson }}, "n": {{ row.n }}}"#,
            &context(),
        )
        .unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["q"], "say \"hi\"\n</script>");
        assert_eq!(parsed["by"], "ed");
        assert_eq!(parsed["n"], 3);
    }

    #[test]
    fn confirmations_are_html_escaped_and_plain_bodies_are_not() {
        let text = render_action_text("c.html", "Restart {{ row.q }}?", &context()).unwrap();
        assert!(
            text.contains("&lt;") && !text.contains("</script>"),
            "{text}"
        );
        assert_eq!(
            render_action_text("b.txt", "{{ row.n }}<", &context()).unwrap(),
            "3<"
        );
    }

    #[test]
    fn row_fields_are_what_the_template_reads() {
        let fields = row_fields("https://x/{{ row.vm }}/{{ row.host.name }}?u={{ user }}");
        assert_eq!(fields.into_iter().collect::<Vec<_>>(), vec!["host", "vm"]);
        assert!(check_action_text("x.url", "{{ row.vm").is_err());
    }
}
