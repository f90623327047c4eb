//! A health_status answer drawn: one line per service with its colour, label and how long ago
//! it was checked (on the page's clock).

use std::sync::LazyLock;

use minijinja::{Environment, context};
use serde::Serialize;

use super::HealthAnswer;
use crate::render::{FragmentOptions, RenderError, ago, fragment_environment, render_fragment};

static TEMPLATE: LazyLock<Environment<'static>> =
    LazyLock::new(|| fragment_environment("health_status.html", include_str!("fragment.html")));

#[derive(Serialize)]
struct Line<'a> {
    name: &'a str,
    label: &'a str,
    color: &'a str,
    error: Option<&'a str>,
    link: Option<&'a str>,
    ago: String,
}

impl HealthAnswer {
    pub fn fragment(&self, options: &FragmentOptions) -> Result<String, RenderError> {
        let services: Vec<Line<'_>> = self
            .services
            .iter()
            .map(|s| Line {
                name: &s.name,
                label: &s.label,
                color: &s.color,
                error: s.error.as_deref(),
                link: s.link.as_deref(),
                ago: s
                    .last_checked
                    .map_or("never".to_string(), |t| ago(t.ms(), options.now_ms)),
            })
            .collect();
        render_fragment(&TEMPLATE, "health_status.html", context! { services })
    }
}

#[cfg(test)]
mod tests {
    use super::super::ServiceHealth;
    use super::*;
    use crate::clock::Timestamp;
    use crate::panels::answer::{Header, Range};

    #[test]
    fn escapes_names_and_tells_the_age() {
        let answer = HealthAnswer {
            header: Header {
                panel: "h".into(),
                title: "H".into(),
                description: None,
                range: Range {
                    from: Timestamp::from_ms(0),
                    to: Timestamp::from_ms(1),
                },
            },
            services: vec![ServiceHealth {
                name: "<b>api</b>".into(),
                status: Some("0".into()),
                label: "Healthy".into(),
                color: "#10B981".into(),
                last_checked: Some(Timestamp::from_ms(1_704_110_220_000)),
                error: None,
                stale: false,
                link: None,
            }],
            summary: Default::default(),
        };
        let options = FragmentOptions {
            tz: chrono_tz::UTC,
            now_ms: 1_704_110_400_000,
            chart_width: 600,
            chart_height: 260,
            link_path: "/t/acme/p/h".into(),
            query: vec![],
            row_actions: vec![],
        };
        let html = answer.fragment(&options).unwrap();
        assert!(html.contains("&lt;b&gt;api&lt;&#x2f;b&gt;"), "{html}");
        assert!(html.contains("checked 3 min ago"), "{html}");
    }
}
