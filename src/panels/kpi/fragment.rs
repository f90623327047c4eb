//! A kpi answer drawn: the number, the reached threshold's dot and label, and the change from
//! the previous period as `+12.0 (+23.5%)`.

use std::sync::LazyLock;

use minijinja::{Environment, context};

use super::KpiAnswer;
use crate::render::{RenderError, format_value, fragment_environment, render_fragment};

static TEMPLATE: LazyLock<Environment<'static>> =
    LazyLock::new(|| fragment_environment("kpi.html", include_str!("fragment.html")));

impl KpiAnswer {
    pub fn fragment(&self) -> Result<String, RenderError> {
        let context = context! {
            formatted => self.formatted,
            color => self.color,
            label => self.label,
            delta_text => self.delta_text(),
            delta_class => self.delta.map(|d| if d >= 0.0 { "up" } else { "down" }),
        };
        render_fragment(&TEMPLATE, "kpi.html", context)
    }

    /// `+12.0 (+23.5%)`: the delta at the value's decimals, the percentage to one decimal.
    fn delta_text(&self) -> Option<String> {
        let delta = self.delta?;
        let percent = self
            .delta_percent
            .map(|p| {
                format!(
                    " ({}{}%)",
                    if p >= 0.0 { "+" } else { "" },
                    format_value((p * 10.0).round() / 10.0)
                )
            })
            .unwrap_or_default();
        Some(format!(
            "{}{delta:.decimals$}{percent}",
            if delta >= 0.0 { "+" } else { "" },
            decimals = self.decimals as usize
        ))
    }
}
