//! M4 downsampling of raw rows: the range is cut into as many columns as the chart has pixels,
//! and each series keeps, per column, its first, last, lowest and highest point. A line drawn
//! through those is the line drawn through every row (the same pixels light up), so a raw
//! range of any length shows all of it — the newest rows included — with each series' true
//! minimum and maximum, in at most four points per pixel column.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Point;
use crate::clock::Timestamp;

/// What downsampling did, for the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Downsample {
    /// `m4`.
    pub method: String,
    /// Pixel columns the range was cut into.
    pub columns: usize,
    pub points_in: u64,
    pub points_out: u64,
}

#[derive(Debug, Clone, Copy)]
struct Column {
    first: (i64, f64),
    last: (i64, f64),
    min: (i64, f64),
    max: (i64, f64),
}

impl Column {
    fn new(point: (i64, f64)) -> Self {
        Self {
            first: point,
            last: point,
            min: point,
            max: point,
        }
    }

    fn add(&mut self, (t, v): (i64, f64)) {
        if t < self.first.0 {
            self.first = (t, v);
        }
        if t >= self.last.0 {
            self.last = (t, v);
        }
        if v < self.min.1 || (v == self.min.1 && t < self.min.0) {
            self.min = (t, v);
        }
        if v > self.max.1 || (v == self.max.1 && t < self.max.0) {
            self.max = (t, v);
        }
    }
}

/// Accumulates rows (in any order) into per-series columns.
pub struct M4 {
    from_ns: i64,
    span_ns: i128,
    columns: usize,
    series: BTreeMap<String, Vec<Option<Column>>>,
    points_in: u64,
}

impl M4 {
    pub fn new(from_ns: i64, to_ns: i64, columns: usize) -> Self {
        Self {
            from_ns,
            span_ns: (to_ns as i128 - from_ns as i128).max(1),
            columns: columns.max(1),
            series: BTreeMap::new(),
            points_in: 0,
        }
    }

    /// One row. Rows without a (finite) value count as read but draw nothing.
    pub fn push(&mut self, series: &str, time_ns: i64, value: Option<f64>) {
        self.points_in += 1;
        let Some(value) = value.filter(|v| v.is_finite()) else {
            return;
        };
        let offset = time_ns as i128 - self.from_ns as i128;
        let index =
            (offset * self.columns as i128 / self.span_ns).clamp(0, self.columns as i128 - 1);
        let columns = match self.series.get_mut(series) {
            Some(c) => c,
            None => self
                .series
                .entry(series.to_string())
                .or_insert_with(|| vec![None; self.columns]),
        };
        match &mut columns[index as usize] {
            Some(column) => column.add((time_ns, value)),
            slot => *slot = Some(Column::new((time_ns, value))),
        }
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Each series' kept points in time order, and what was done.
    pub fn finish(self) -> (BTreeMap<String, Vec<Point>>, Downsample) {
        let mut points_out = 0u64;
        let series = self
            .series
            .into_iter()
            .map(|(name, columns)| {
                let mut points: Vec<(i64, f64)> = Vec::new();
                for c in columns.into_iter().flatten() {
                    let mut four = [c.first, c.min, c.max, c.last];
                    four.sort_by_key(|p| p.0);
                    for p in four {
                        if points.last() != Some(&p) {
                            points.push(p);
                        }
                    }
                }
                points_out += points.len() as u64;
                let points = points
                    .into_iter()
                    .map(|(t, v)| Point {
                        time: Timestamp::from_ns(t),
                        value: Some(v),
                    })
                    .collect();
                (name, points)
            })
            .collect();
        let done = Downsample {
            method: "m4".into(),
            columns: self.columns,
            points_in: self.points_in,
            points_out,
        };
        (series, done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_first_last_min_and_max_of_each_column() {
        let mut m4 = M4::new(0, 100, 2);
        for (t, v) in [
            (0, 5.0),
            (10, 9.0),
            (20, 1.0),
            (30, 4.0),
            (49, 3.0),
            (50, 7.0),
            (99, 8.0),
        ] {
            m4.push("a", t, Some(v));
        }
        m4.push("a", 60, None);
        let (series, done) = m4.finish();
        let kept: Vec<(i64, f64)> = series["a"]
            .iter()
            .map(|p| (p.time.ns(), p.value.unwrap()))
            .collect();
        // Column 0: first (0,5), max (10,9), min (20,1), last (49,3); column 1: (50,7), (99,8).
        assert_eq!(kept.len(), 6);
        assert_eq!(done.points_in, 8);
        assert_eq!(done.points_out, 6);
    }

    proptest! {
        /// Whatever the rows, each series keeps its newest and oldest row, its true minimum
        /// and maximum, and at most four points per column, in time order.
        #[test]
        fn every_series_keeps_its_ends_and_extremes(
            rows in proptest::collection::vec((0usize..3, 0i64..1_000_000, -1e6f64..1e6), 1..400),
            columns in 1usize..50,
        ) {
            let mut m4 = M4::new(0, 1_000_000, columns);
            for (s, t, v) in &rows {
                m4.push(&format!("s{s}"), *t, Some(*v));
            }
            let (series, done) = m4.finish();
            prop_assert_eq!(done.points_in as usize, rows.len());
            for (name, points) in &series {
                let mine: Vec<(i64, f64)> = rows.iter()
                    .filter(|(s, _, _)| &format!("s{s}") == name)
                    .map(|(_, t, v)| (*t, *v)).collect();
                let kept: Vec<(i64, f64)> = points.iter().map(|p| (p.time.ns(), p.value.unwrap())).collect();
                prop_assert!(kept.len() <= 4 * columns);
                prop_assert!(kept.windows(2).all(|w| w[0].0 <= w[1].0), "time order");
                let newest = mine.iter().map(|p| p.0).max().unwrap();
                let oldest = mine.iter().map(|p| p.0).min().unwrap();
                prop_assert_eq!(kept.last().unwrap().0, newest);
                prop_assert_eq!(kept.first().unwrap().0, oldest);
                let min = mine.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
                let max = mine.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
                prop_assert!(kept.iter().any(|p| p.1 == min));
                prop_assert!(kept.iter().any(|p| p.1 == max));
                prop_assert!(kept.iter().all(|p| mine.contains(p)), "only real rows");
            }
        }
    }
}
