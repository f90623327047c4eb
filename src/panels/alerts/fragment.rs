//! An alerts answer drawn: one line per active alert, and a link to the tenant's alerts page.

use std::sync::LazyLock;

use minijinja::{Environment, context};

use super::AlertsAnswer;
use crate::render::{FragmentOptions, RenderError, fragment_environment, render_fragment};

static TEMPLATE: LazyLock<Environment<'static>> =
    LazyLock::new(|| fragment_environment("alerts.html", include_str!("fragment.html")));

impl AlertsAnswer {
    pub fn fragment(&self, o: &FragmentOptions) -> Result<String, RenderError> {
        // The tenant's alerts page, from the panel's own link `/t/{tenant}/...`.
        let tenant_root: String = o.link_path.split('/').take(3).collect::<Vec<_>>().join("/");
        let context = context! {
            alerts => self.alerts,
            changes_in_range => self.changes_in_range,
            alerts_url => format!("{tenant_root}/alerts"),
        };
        render_fragment(&TEMPLATE, "alerts.html", context)
    }
}
