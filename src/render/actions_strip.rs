//! What a panel shows of its actions besides the per-row buttons of a table: buttons for the
//! panel's own actions, and its newest runs — a failed restart stays in view until newer runs
//! push it out.

use std::sync::LazyLock;

use minijinja::{Environment, context};
use serde::Serialize;

use super::{RenderError, fragment_environment, render_fragment};

static TEMPLATE: LazyLock<Environment<'static>> =
    LazyLock::new(|| fragment_environment("actions.html", include_str!("actions_strip.html")));

/// A button: the action's confirmation page.
#[derive(Debug, Clone, Serialize)]
pub struct ActionButton {
    pub label: String,
    pub url: String,
}

/// A button on each row of a table: the action's confirmation page (`url` carries the panel
/// and the page's range), the row's `key` columns added as `row.<column>`.
#[derive(Debug, Clone, Serialize)]
pub struct RowAction {
    pub label: String,
    pub url: String,
    pub key: Vec<String>,
}

/// One run in the panel's list.
#[derive(Debug, Clone, Serialize)]
pub struct RunLine {
    pub label: String,
    pub target: String,
    pub status: &'static str,
    pub error: Option<String>,
    pub ago: String,
    pub url: String,
}

/// The strip's HTML; empty when there is nothing to show.
pub fn actions_strip(buttons: &[ActionButton], runs: &[RunLine]) -> Result<String, RenderError> {
    if buttons.is_empty() && runs.is_empty() {
        return Ok(String::new());
    }
    render_fragment(&TEMPLATE, "actions.html", context! { buttons, runs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_buttons_and_escaped_failures_and_nothing_when_empty() {
        assert_eq!(actions_strip(&[], &[]).unwrap(), "");
        let html = actions_strip(
            &[ActionButton {
                label: "Rebuild".into(),
                url: "/t/a/actions/rebuild?panel=p".into(),
            }],
            &[RunLine {
                label: "Restart".into(),
                target: "vm=<b>".into(),
                status: "failed",
                error: Some("http://x answered 500".into()),
                ago: "just now".into(),
                url: "/t/a/actions/runs/1".into(),
            }],
        )
        .unwrap();
        assert!(html.contains(">Rebuild</a>"), "{html}");
        assert!(html.contains("vm=&lt;b&gt; · failed: http:"), "{html}");
    }
}
