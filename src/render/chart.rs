//! Time-series charts drawn with plotters into SVG (and PNG for the `.png` route): several series with a legend, axis labels
//! in the tenant's timezone, the configured y range, colours and fill, and gaps where buckets
//! are missing (no line is drawn across absent data). Each point carries a `<title>` so its
//! value shows on hover, and the root element carries the plot's pixel and time bounds so the
//! page script can turn a drag into a zoom.

use chrono::TimeZone;
use plotters::prelude::*;

/// One line: points are (epoch ms, value); `None` is a bucket without data.
#[derive(Debug, Clone)]
pub struct ChartSeries {
    pub name: String,
    pub points: Vec<(i64, Option<f64>)>,
}

#[derive(Debug, Clone)]
pub struct TimeChart<'a> {
    pub series: &'a [ChartSeries],
    /// The requested range, epoch ms (the x axis spans it even where data is missing).
    pub from_ms: i64,
    pub to_ms: i64,
    /// Bucket width in ms; None for raw rows (gaps are then judged from the typical spacing).
    pub step_ms: Option<i64>,
    pub y_label: Option<&'a str>,
    pub y_range: Option<[f64; 2]>,
    pub colors: &'a [String],
    pub fill: bool,
    pub tz: chrono_tz::Tz,
    pub width: u32,
    pub height: u32,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(59, 130, 246),
    RGBColor(16, 185, 129),
    RGBColor(245, 158, 11),
    RGBColor(239, 68, 68),
    RGBColor(139, 92, 246),
    RGBColor(236, 72, 153),
    RGBColor(20, 184, 166),
    RGBColor(107, 114, 128),
];

/// At most this many hover targets; beyond it the SVG would grow more than it helps.
const MAX_HOVER_POINTS: usize = 4_000;

pub fn parse_color(text: &str) -> Option<RGBColor> {
    let hex = text.strip_prefix('#')?;
    let channel = |s: &str| u8::from_str_radix(s, 16).ok();
    match hex.len() {
        6 => Some(RGBColor(
            channel(&hex[0..2])?,
            channel(&hex[2..4])?,
            channel(&hex[4..6])?,
        )),
        3 => {
            let d = |i: usize| channel(&hex[i..i + 1]).map(|v| v * 17);
            Some(RGBColor(d(0)?, d(1)?, d(2)?))
        }
        _ => None,
    }
}

/// Cuts runs of points to the band `lo..=hi`: a line leaving the band ends at the crossing and
/// a new run starts where it comes back, so nothing is drawn outside the plot area.
pub fn clip_to_band(runs: Vec<Vec<(i64, f64)>>, lo: f64, hi: f64) -> Vec<Vec<(i64, f64)>> {
    let inside = |v: f64| (lo..=hi).contains(&v);
    // Where the segment a→b crosses `edge`, as a point on the edge.
    let cross = |a: (i64, f64), b: (i64, f64), edge: f64| -> (i64, f64) {
        let t = (edge - a.1) / (b.1 - a.1);
        (a.0 + ((b.0 - a.0) as f64 * t).round() as i64, edge)
    };
    let mut out = vec![];
    for run in runs {
        let mut current: Vec<(i64, f64)> = vec![];
        for (i, &p) in run.iter().enumerate() {
            let previous = i.checked_sub(1).map(|k| run[k]);
            match (previous, inside(p.1)) {
                (_, true) if current.is_empty() => {
                    // Coming back in: start at the edge it crossed.
                    if let Some(prev) = previous.filter(|q| !inside(q.1)) {
                        let edge = if prev.1 > hi { hi } else { lo };
                        current.push(cross(prev, p, edge));
                    }
                    current.push(p);
                }
                (_, true) => current.push(p),
                (Some(prev), false) if inside(prev.1) => {
                    let edge = if p.1 > hi { hi } else { lo };
                    current.push(cross(prev, p, edge));
                    out.push(std::mem::take(&mut current));
                }
                (Some(prev), false) if (prev.1 > hi && p.1 < lo) || (prev.1 < lo && p.1 > hi) => {
                    // Straight across the band between two outside points.
                    let (enter, exit) = if prev.1 > hi { (hi, lo) } else { (lo, hi) };
                    out.push(vec![cross(prev, p, enter), cross(prev, p, exit)]);
                }
                _ => {}
            }
        }
        if !current.is_empty() {
            out.push(current);
        }
    }
    out
}

/// Splits a series into runs of consecutive points with no gap between them.
pub fn segments(points: &[(i64, Option<f64>)], step_ms: Option<i64>) -> Vec<Vec<(i64, f64)>> {
    // Data coarser than the bucket (5-minute samples in 1-minute buckets) is not a gap at
    // every other bucket: the typical spacing of the series itself sets the floor.
    let step = step_ms.unwrap_or(0).max(typical_spacing(points));
    let mut out: Vec<Vec<(i64, f64)>> = vec![];
    let mut current: Vec<(i64, f64)> = vec![];
    for &(t, v) in points {
        match v {
            None => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            Some(v) => {
                // A point more than one and a half steps after the last one starts a new run.
                if let Some(&(last, _)) = current.last()
                    && step > 0
                    && (t - last) * 2 > step * 3
                {
                    out.push(std::mem::take(&mut current));
                }
                current.push((t, v));
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn typical_spacing(points: &[(i64, Option<f64>)]) -> i64 {
    let mut gaps: Vec<i64> = points
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .filter(|g| *g > 0)
        .collect();
    if gaps.is_empty() {
        return 0;
    }
    gaps.sort_unstable();
    gaps[gaps.len() / 2]
}

fn time_label(ms: i64, span_ms: i64, tz: chrono_tz::Tz) -> String {
    let t = tz.timestamp_millis_opt(ms).single();
    let format = if span_ms <= 86_400_000 {
        "%H:%M"
    } else {
        "%m-%d %H:%M"
    };
    t.map(|t| t.format(format).to_string()).unwrap_or_default()
}

/// Text made safe inside HTML or SVG markup.
pub fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What drawing leaves for the SVG wrapper: hover targets and the plot's pixel span.
struct Drawn {
    hover: String,
    plot_x: std::ops::Range<i32>,
    x0: i64,
    x1: i64,
}

/// Draws the chart on any plotters backend (SVG for pages, a bitmap for PNG).
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    chart: &TimeChart<'_>,
    with_hover: bool,
) -> Result<Drawn, String>
where
    DB::ErrorType: 'static,
{
    let values = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| p.1));
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (y0, y1) = match chart.y_range {
        Some([a, b]) => (a, b),
        None if lo.is_finite() => {
            let pad = ((hi - lo).abs() * 0.05).max(1e-9);
            (if lo >= 0.0 { 0.0_f64.min(lo) } else { lo - pad }, hi + pad)
        }
        None => (0.0, 1.0),
    };
    let (x0, x1) = (chart.from_ms, chart.to_ms.max(chart.from_ms + 1));
    let mut hover = String::new();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut builder = ChartBuilder::on(root);
    builder
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(56);
    let mut ctx = builder
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())?;
    let span = x1 - x0;
    let tz = chart.tz;
    let x_format = |ms: &i64| time_label(*ms, span, tz);
    let mut mesh = ctx.configure_mesh();
    mesh.x_labels(6)
        .y_labels(6)
        .light_line_style(RGBColor(235, 235, 235))
        .x_label_formatter(&x_format);
    if let Some(label) = chart.y_label {
        mesh.y_desc(label);
    }
    mesh.draw().map_err(|e| e.to_string())?;
    let total_points: usize = chart.series.iter().map(|s| s.points.len()).sum();
    for (i, series) in chart.series.iter().enumerate() {
        let color = chart
            .colors
            .get(i)
            .and_then(|c| parse_color(c))
            .unwrap_or(PALETTE[i % PALETTE.len()]);
        // A fixed `y_axis_range` may cut the data: lines and fills stay inside the plot.
        let runs = clip_to_band(segments(&series.points, chart.step_ms), y0, y1);
        for (r, run) in runs.iter().enumerate() {
            if chart.fill {
                ctx.draw_series(AreaSeries::new(
                    run.iter().copied(),
                    y0.max(0.0).min(y1),
                    color.mix(0.15),
                ))
                .map_err(|e| e.to_string())?;
            }
            let line = ctx
                .draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?;
            if r == 0 {
                line.label(series.name.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2))
                });
            }
            if run.len() == 1 {
                ctx.draw_series(std::iter::once(Circle::new(run[0], 2, color.filled())))
                    .map_err(|e| e.to_string())?;
            }
        }
        if with_hover && total_points <= MAX_HOVER_POINTS {
            for &(t, v) in &series.points {
                let Some(v) = v.filter(|v| (y0..=y1).contains(v)) else {
                    continue;
                };
                let (px, py) = ctx.backend_coord(&(t, v));
                hover.push_str(&format!(
                    "<circle cx=\"{px}\" cy=\"{py}\" r=\"4\" class=\"hover-point\"><title>{} · {} · {}</title></circle>",
                    escape_html(&series.name),
                    // Always with the date: a week-long chart has many 05:00s.
                    escape_html(&time_label(t, i64::MAX, tz)),
                    format_value(v)
                ));
            }
        }
    }
    if chart.series.len() > 1 {
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    let plot_x = ctx.plotting_area().get_pixel_range().0;
    root.present().map_err(|e| e.to_string())?;
    Ok(Drawn {
        hover,
        plot_x,
        x0,
        x1,
    })
}

/// The chart as an SVG document.
pub fn timeseries_svg(chart: &TimeChart<'_>) -> Result<String, String> {
    super::fonts::register();
    let mut svg = String::new();
    let drawn = {
        let root =
            SVGBackend::with_string(&mut svg, (chart.width, chart.height)).into_drawing_area();
        draw(&root, chart, true)?
    };
    // Plot bounds for the page's drag-to-zoom, hover targets before the end.
    let attributes = format!(
        "<svg class=\"chart\" data-plot-left=\"{}\" data-plot-right=\"{}\" data-from=\"{}\" data-to=\"{}\" ",
        drawn.plot_x.start, drawn.plot_x.end, drawn.x0, drawn.x1
    );
    let svg = svg.replacen("<svg ", &attributes, 1);
    Ok(match svg.rfind("</svg>") {
        Some(end) => format!(
            "{}<g class=\"hover\">{}</g></svg>\n",
            &svg[..end],
            drawn.hover
        ),
        None => svg,
    })
}

/// The chart as a PNG image.
pub fn timeseries_png(chart: &TimeChart<'_>) -> Result<Vec<u8>, String> {
    super::fonts::register();
    let (width, height) = (chart.width, chart.height);
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        draw(&root, chart, false)?;
    }
    encode_png(&rgb, width, height)
}

/// RGB pixels → PNG bytes.
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, String> {
    let mut out = vec![];
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Up to 4 significant decimals, without trailing zeros.
pub fn format_value(v: f64) -> String {
    let text = format!("{v:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(i64, Option<f64>)]) -> Vec<ChartSeries> {
        vec![ChartSeries {
            name: "a<b".into(),
            points: points.to_vec(),
        }]
    }

    fn chart(series: &[ChartSeries]) -> TimeChart<'_> {
        TimeChart {
            series,
            from_ms: 0,
            to_ms: 600_000,
            step_ms: Some(60_000),
            y_label: Some("CPU %"),
            y_range: Some([0.0, 100.0]),
            colors: &[],
            fill: false,
            tz: chrono_tz::UTC,
            width: 600,
            height: 300,
        }
    }

    #[test]
    fn gaps_split_lines() {
        let points = [
            (0, Some(1.0)),
            (60_000, Some(2.0)),
            (120_000, None),
            (180_000, Some(3.0)),
            (420_000, Some(4.0)),
        ];
        let runs = segments(&points, Some(60_000));
        assert_eq!(runs.len(), 3, "{runs:?}");
        assert_eq!(runs[0], vec![(0, 1.0), (60_000, 2.0)]);
        // Raw rows: the typical spacing decides.
        let raw = [
            (0, Some(1.0)),
            (10, Some(1.0)),
            (20, Some(1.0)),
            (100, Some(1.0)),
        ];
        assert_eq!(segments(&raw, None).len(), 2);
    }

    #[test]
    fn svg_has_a_point_per_value_a_gap_and_labels() {
        let s = series(&[
            (0, Some(10.0)),
            (60_000, Some(20.0)),
            (180_000, Some(30.0)),
            (240_000, Some(40.0)),
        ]);
        let svg = timeseries_svg(&chart(&s)).unwrap();
        assert_eq!(svg.matches("class=\"hover-point\"").count(), 4);
        // Two runs: two polylines for the series.
        assert_eq!(
            svg.matches("<polyline fill=\"none\" opacity=\"1\" stroke=\"#3B82F6\"")
                .count(),
            2,
            "{svg}"
        );
        assert!(svg.contains("CPU %"));
        assert!(
            svg.contains(">00:05<") || svg.contains("00:05"),
            "x labels in HH:MM"
        );
        assert!(
            svg.contains("a&lt;b · 01-01 00:01 · 20"),
            "escaped hover title"
        );
        assert!(svg.contains("data-from=\"0\" data-to=\"600000\""));
    }

    #[test]
    fn png_is_a_png_of_the_requested_size() {
        let s = series(&[(0, Some(10.0)), (60_000, Some(20.0))]);
        let png = timeseries_png(&chart(&s)).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (600, 300));
    }

    #[test]
    fn parses_colors() {
        assert_eq!(parse_color("#3B82F6"), Some(RGBColor(59, 130, 246)));
        assert_eq!(parse_color("#fff"), Some(RGBColor(255, 255, 255)));
        assert_eq!(parse_color("blue"), None);
        assert_eq!(format_value(12.5), "12.5");
        assert_eq!(format_value(3.0), "3");
    }

    #[test]
    fn lines_are_cut_at_the_band() {
        let run = vec![(0, 50.0), (10, 150.0), (20, 50.0), (30, -50.0), (40, 20.0)];
        let clipped = clip_to_band(vec![run], 0.0, 100.0);
        assert_eq!(
            clipped,
            vec![
                vec![(0, 50.0), (5, 100.0)],
                vec![(15, 100.0), (20, 50.0), (25, 0.0)],
                vec![(37, 0.0), (40, 20.0)],
            ]
        );
        let across = clip_to_band(vec![vec![(0, 200.0), (10, -100.0)]], 0.0, 100.0);
        assert_eq!(across, vec![vec![(3, 100.0), (7, 0.0)]]);
        assert!(clip_to_band(vec![vec![(0, 200.0), (10, 300.0)]], 0.0, 100.0).is_empty());
        for run in clip_to_band(
            vec![
                (0..50)
                    .map(|i| (i, (i as f64 * 0.7).sin() * 150.0))
                    .collect(),
            ],
            -100.0,
            100.0,
        ) {
            assert!(
                run.iter().all(|p| (-100.0..=100.0).contains(&p.1)),
                "{run:?}"
            );
        }
    }
}
