//! A table answer drawn: headings that sort (toggling the order), a filter form that keeps the
//! other parameters, one page of formatted cells and links to the neighbouring pages.

use std::sync::LazyLock;

use minijinja::{Environment, context};
use serde::Serialize;

use super::TableAnswer;
use crate::config::SortOrder;
use crate::render::{FragmentOptions, RenderError, fragment_environment, link, render_fragment};

static TEMPLATE: LazyLock<Environment<'static>> =
    LazyLock::new(|| fragment_environment("table.html", include_str!("fragment.html")));

#[derive(Serialize)]
struct Heading<'a> {
    display: &'a str,
    sorted: bool,
    arrow: &'static str,
    sort_url: Option<String>,
}

#[derive(Serialize)]
struct Cell<'a> {
    text: &'a str,
    link: Option<&'a str>,
    /// An attachment's thumbnail, shown instead of its id.
    thumbnail: Option<String>,
}

#[derive(Serialize)]
struct ActionLink<'a> {
    label: &'a str,
    url: String,
}

#[derive(Serialize)]
struct Hidden<'a> {
    name: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct Controls<'a> {
    columns: Vec<Heading<'a>>,
    action: &'a str,
    hidden: Vec<Hidden<'a>>,
    filter: Option<&'a str>,
    prev_url: Option<String>,
    next_url: Option<String>,
}

impl TableAnswer {
    /// Row `r`'s action buttons: each action's page with the row's key columns as
    /// `row.<column>` (none when a key column is not shown or is null).
    fn row_action_links<'a>(&self, r: usize, o: &'a FragmentOptions) -> Vec<ActionLink<'a>> {
        let Some(row) = self.rows.get(r) else {
            return vec![];
        };
        o.row_actions
            .iter()
            .filter_map(|action| {
                let mut query = url::form_urlencoded::Serializer::new(String::new());
                for column in &action.key {
                    let at = self.columns.iter().position(|c| &c.name == column)?;
                    let text = match row.get(at)? {
                        serde_json::Value::Null => return None,
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    query.append_pair(&format!("row.{column}"), &text);
                }
                Some(ActionLink {
                    label: &action.label,
                    url: format!("{}&{}", action.url, query.finish()),
                })
            })
            .collect()
    }

    pub fn fragment(&self, o: &FragmentOptions) -> Result<String, RenderError> {
        let descending = self.order == SortOrder::Desc;
        let columns = self
            .columns
            .iter()
            .map(|c| {
                let sorted = self.sort.as_deref() == Some(c.name.as_str());
                let next = if sorted && !descending { "desc" } else { "asc" };
                Heading {
                    display: &c.display,
                    sorted,
                    arrow: if descending { "▼" } else { "▲" },
                    sort_url: self.sortable.then(|| {
                        let set = [
                            ("sort", c.name.clone()),
                            ("order", next.to_string()),
                            ("page", "1".into()),
                        ];
                        link(&o.link_path, &o.query, &set)
                    }),
                }
            })
            .collect();
        let page = u64::from(self.page);
        let to_page = |n: u64| link(&o.link_path, &o.query, &[("page", n.to_string())]);
        let table = Controls {
            columns,
            action: &o.link_path,
            hidden: o
                .query
                .iter()
                .filter(|(k, _)| k != "filter" && k != "page")
                .map(|(name, value)| Hidden { name, value })
                .collect(),
            filter: o
                .query
                .iter()
                .find(|(k, _)| k == "filter")
                .map(|(_, v)| v.as_str()),
            prev_url: (page > 1).then(|| to_page(page - 1)),
            next_url: (page < self.total_pages).then(|| to_page(page + 1)),
        };
        // Each cell with the page it links to, if its column links.
        let cells: Vec<Vec<Cell<'_>>> = self
            .text
            .iter()
            .enumerate()
            .map(|(r, row)| {
                row.iter()
                    .enumerate()
                    .map(|(c, text)| {
                        let link = self
                            .links
                            .get(r)
                            .and_then(|l| l.get(c))
                            .and_then(|l| l.as_deref());
                        let file = self.columns.get(c).is_some_and(|h| h.attachment);
                        Cell {
                            text,
                            link,
                            thumbnail: link.filter(|_| file).map(|l| format!("{l}?thumbnail=1")),
                        }
                    })
                    .collect()
            })
            .collect();
        let actions: Vec<Vec<ActionLink>> = (0..self.text.len())
            .map(|r| self.row_action_links(r, o))
            .collect();
        // A gallery's caption: the row's other cells, in column order.
        let captions: Vec<String> = self
            .text
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&self.columns)
                    .filter(|(_, h)| !h.attachment)
                    .map(|(t, _)| t.as_str())
                    .collect::<Vec<_>>()
                    .join(" · ")
            })
            .collect();
        let context = context! {
            table,
            gallery => self.gallery,
            captions,
            text => cells,
            has_actions => !o.row_actions.is_empty(),
            actions,
            page => self.page,
            total_pages => self.total_pages,
            total_rows => self.total_rows,
        };
        render_fragment(&TEMPLATE, "table.html", context)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ColumnHeading;
    use super::*;
    use crate::clock::Timestamp;
    use crate::panels::answer::{Header, Range};

    fn heading(name: &str, display: &str) -> ColumnHeading {
        ColumnHeading {
            name: name.into(),
            display: display.into(),
            format: None,
            attachment: false,
        }
    }

    #[test]
    fn links_keep_the_range_and_toggle_the_order() {
        let answer = TableAnswer {
            header: Header {
                panel: "errors".into(),
                title: "Errors".into(),
                description: None,
                range: Range {
                    from: Timestamp::from_ms(0),
                    to: Timestamp::from_ms(1),
                },
            },
            columns: vec![heading("time", "Time"), heading("service", "Service")],
            rows: vec![],
            text: vec![vec!["2024".into(), "api".into()]],
            page: 2,
            page_size: 1,
            total_rows: 7,
            total_pages: 3,
            sort: Some("time".into()),
            order: SortOrder::Asc,
            sortable: true,
            links: vec![vec![None, Some("/t/acme/d/svc?var-service=api".into())]],
            gallery: false,
        };
        let options = FragmentOptions {
            tz: chrono_tz::UTC,
            now_ms: 0,
            chart_width: 600,
            chart_height: 260,
            link_path: "/t/acme/p/errors".into(),
            query: vec![
                ("from".into(), "now-1h".into()),
                ("filter".into(), "x".into()),
            ],
            row_actions: vec![],
        };
        let html = answer.fragment(&options).unwrap().replace("&#x2f;", "/");
        assert!(
            html.contains(
                "/t/acme/p/errors?from=now-1h&amp;filter=x&amp;sort=time&amp;order=desc&amp;page=1"
            ),
            "{html}"
        );
        assert!(html.contains("page=1\" rel=\"prev\""), "{html}");
        assert!(
            html.contains("<td><a href=\"/t/acme/d/svc?var-service=api\">api</a></td>"),
            "{html}"
        );
        assert!(html.contains("page=3\" rel=\"next\""), "{html}");
        assert!(
            html.contains("value=\"x\""),
            "the filter box keeps its text"
        );
    }
}
