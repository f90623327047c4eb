//! A timeseries answer drawn: its chart as SVG or PNG, its HTML fragment, and the points table
//! a drill-down shows under the chart.

use std::sync::LazyLock;

use minijinja::{Environment, Value as Jinja, context};
use serde_json::{Value, json};

use super::TimeseriesAnswer;
use crate::config::Bucket;
use crate::render::{
    ChartSeries, FragmentOptions, RenderError, TimeChart, format_value, fragment_environment,
    local_time, render_fragment, timeseries_png, timeseries_svg,
};

static TEMPLATE: LazyLock<Environment<'static>> =
    LazyLock::new(|| fragment_environment("timeseries.html", include_str!("fragment.html")));

impl TimeseriesAnswer {
    pub fn fragment(&self, options: &FragmentOptions) -> Result<String, RenderError> {
        let empty = self.series.iter().all(|s| s.points.is_empty());
        let chart = if empty {
            String::new()
        } else {
            self.chart_svg(options)?
        };
        // Series that open an entity page, listed under the chart (the legend is in the SVG).
        let links: Vec<(&str, &str)> = self
            .series
            .iter()
            .filter_map(|s| s.link.as_deref().map(|l| (s.name.as_str(), l)))
            .collect();
        let context = context! {
            empty,
            links,
            chart => Jinja::from_safe_string(chart),
            truncated => self.truncated,
            bucket => Jinja::from_serialize(self.bucket),
            aggregation => Jinja::from_serialize(self.aggregation),
        };
        render_fragment(&TEMPLATE, "timeseries.html", context)
    }

    /// The chart as SVG (pages and the `.svg` route).
    pub fn chart_svg(&self, options: &FragmentOptions) -> Result<String, RenderError> {
        self.with_chart(options, timeseries_svg)
    }

    /// The chart as PNG (the `.png` route).
    pub fn chart_png(&self, options: &FragmentOptions) -> Result<Vec<u8>, RenderError> {
        self.with_chart(options, timeseries_png)
    }

    fn with_chart<T>(
        &self,
        o: &FragmentOptions,
        render: impl Fn(&TimeChart<'_>) -> Result<T, String>,
    ) -> Result<T, RenderError> {
        let series: Vec<ChartSeries> = self
            .series
            .iter()
            .map(|s| ChartSeries {
                name: s.name.clone(),
                points: s.points.iter().map(|p| (p.time.ms(), p.value)).collect(),
            })
            .collect();
        let display = &self.display;
        let colors: Vec<String> = if display.colors.is_empty() {
            display.line_color.clone().into_iter().collect()
        } else {
            display.colors.clone()
        };
        let step_ms = match self.bucket {
            Bucket::Raw => None,
            Bucket::Every(d) => Some(d.as_millis() as i64),
        };
        let chart = TimeChart {
            series: &series,
            from_ms: self.header.range.from.ms(),
            to_ms: self.header.range.to.ms(),
            step_ms,
            y_label: display.y_axis_label.as_deref(),
            y_range: display.y_axis_range,
            colors: &colors,
            fill: display.fill_area.unwrap_or(false),
            tz: o.tz,
            width: o.chart_width,
            height: o.chart_height,
        };
        render(&chart).map_err(RenderError::Template)
    }

    /// The points as a table (time on the tenant's clock, series, value), in time order, at
    /// most `limit` rows: what the drill-down shows under its chart.
    pub fn points_table(&self, tz: chrono_tz::Tz, limit: usize) -> Value {
        let mut rows: Vec<(i64, &str, Option<f64>)> = self
            .series
            .iter()
            .flat_map(|s| {
                s.points
                    .iter()
                    .map(move |p| (p.time.ns(), s.name.as_str(), p.value))
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        let truncated = rows.len() > limit;
        let rows: Vec<Value> = rows
            .into_iter()
            .take(limit)
            .map(|(t, s, v)| {
                json!([
                    local_time(t.div_euclid(1_000_000), tz),
                    s,
                    v.map(format_value).unwrap_or_default()
                ])
            })
            .collect();
        json!({ "columns": ["Time", "Series", "Value"], "rows": rows, "truncated": truncated })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Point, Series};
    use super::*;
    use crate::clock::Timestamp;
    use crate::panels::answer::{Header, Range};

    fn answer(series: Vec<Series>) -> TimeseriesAnswer {
        TimeseriesAnswer {
            downsample: None,
            header: Header {
                panel: "cpu".into(),
                title: "CPU".into(),
                description: None,
                range: Range {
                    from: Timestamp::from_ms(0),
                    to: Timestamp::from_ms(180_000),
                },
            },
            bucket: Bucket::Raw,
            aggregation: None,
            truncated: false,
            series,
            display: Default::default(),
        }
    }

    fn series(name: &str, points: &[(i64, Option<f64>)]) -> Series {
        Series {
            name: name.into(),
            points: points
                .iter()
                .map(|&(ms, value)| Point {
                    time: Timestamp::from_ms(ms),
                    value,
                })
                .collect(),
            link: None,
        }
    }

    #[test]
    fn points_table_is_in_time_order_and_capped() {
        let answer = answer(vec![
            series("a", &[(0, Some(3.5)), (120_000, None)]),
            series("b", &[(0, Some(1.0)), (60_000, Some(2.0))]),
        ]);
        let table = answer.points_table(chrono_tz::UTC, 3);
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
    fn an_empty_answer_says_so_and_a_nan_point_is_null_in_json() {
        let options = FragmentOptions {
            tz: chrono_tz::UTC,
            now_ms: 0,
            chart_width: 600,
            chart_height: 260,
            link_path: "/t/acme/p/cpu".into(),
            query: vec![],
            row_actions: vec![],
        };
        let html = answer(vec![]).fragment(&options).unwrap();
        assert!(html.contains("No data in this range."), "{html}");
        assert!(html.contains("raw rows"), "{html}");
        let json = serde_json::to_value(series("a", &[(5, Some(f64::NAN))])).unwrap();
        assert_eq!(json["points"], json!([[5, null]]));
    }
}
