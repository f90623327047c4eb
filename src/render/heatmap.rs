//! A heatmap drawn with plotters into SVG: rows (e.g. hosts) × columns (e.g. hours), each cell
//! coloured from the value's place between the matrix's min and max. Pure: matrix in, SVG out.

use plotters::prelude::*;

/// Cells by row; `None` is a gap (no data), drawn grey.
#[derive(Debug, Clone)]
pub struct Heatmap {
    pub title: String,
    pub row_labels: Vec<String>,
    pub column_labels: Vec<String>,
    pub cells: Vec<Vec<Option<f64>>>,
}

/// Renders `map` as an SVG document of `width` × `height` pixels.
pub fn heatmap_svg(map: &Heatmap, width: u32, height: u32) -> Result<String, String> {
    super::fonts::register();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let rows = map.row_labels.len().max(1);
        let cols = map.column_labels.len().max(1);
        let (lo, hi) = map
            .cells
            .iter()
            .flatten()
            .flatten()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(*v), hi.max(*v))
            });
        let mut chart = ChartBuilder::on(&root)
            .caption(&map.title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(90)
            .build_cartesian_2d(0..cols, 0..rows)
            .map_err(|e| e.to_string())?;
        let column_labels = map.column_labels.clone();
        let row_labels = map.row_labels.clone();
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(cols.min(12))
            .y_labels(rows.min(20))
            .x_label_formatter(&|x| column_labels.get(*x).cloned().unwrap_or_default())
            .y_label_formatter(&|y| row_labels.get(*y).cloned().unwrap_or_default())
            .draw()
            .map_err(|e| e.to_string())?;
        let cells = map.cells.iter().enumerate().flat_map(|(r, row)| {
            row.iter().enumerate().map(move |(c, v)| {
                let color = match v {
                    None => RGBColor(220, 220, 220),
                    Some(v) => ramp(if hi > lo { (v - lo) / (hi - lo) } else { 0.5 }),
                };
                Rectangle::new([(c, r), (c + 1, r + 1)], color.filled())
            })
        });
        chart.draw_series(cells).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Blue (low) → yellow → red (high).
fn ramp(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64, t: f64| (a + (b - a) * t).round() as u8;
    if t < 0.5 {
        let t = t * 2.0;
        RGBColor(
            lerp(59.0, 250.0, t),
            lerp(130.0, 204.0, t),
            lerp(246.0, 21.0, t),
        )
    } else {
        let t = (t - 0.5) * 2.0;
        RGBColor(
            lerp(250.0, 239.0, t),
            lerp(204.0, 68.0, t),
            lerp(21.0, 68.0, t),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_rect_per_cell() {
        let map = Heatmap {
            title: "cpu".into(),
            row_labels: vec!["a".into(), "b".into()],
            column_labels: vec!["00".into(), "01".into(), "02".into()],
            cells: vec![
                vec![Some(1.0), Some(2.0), None],
                vec![Some(3.0), None, Some(4.0)],
            ],
        };
        let svg = heatmap_svg(&map, 400, 200).unwrap();
        assert!(svg.starts_with("<svg"));
        // Low end of the ramp, high end, and the grey of a gap all appear.
        assert!(svg.contains("#3B82F6"), "{svg}");
        assert!(svg.contains("#EF4444"));
        assert!(svg.contains("#DCDCDC"));
    }
}
