//! The time range a query's filters allow, used to skip whole Parquet files by the min/max
//! time the catalog records for each. Anything not understood widens the range to "all".

use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::scalar::ScalarValue;

use crate::storage::TIME_COLUMN;

/// Inclusive bounds in nanoseconds; `None` means unbounded on that side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub min: Option<i64>,
    pub max: Option<i64>,
}

impl TimeRange {
    /// The range implied by a conjunction of `filters`.
    pub fn from_filters(filters: &[Expr]) -> Self {
        let mut range = TimeRange::default();
        for f in filters {
            range.narrow_by(f);
        }
        range
    }

    pub fn overlaps(&self, min_time: i64, max_time: i64) -> bool {
        self.min.is_none_or(|lo| max_time >= lo) && self.max.is_none_or(|hi| min_time <= hi)
    }

    fn lower(&mut self, v: i64) {
        self.min = Some(self.min.map_or(v, |m| m.max(v)));
    }

    fn upper(&mut self, v: i64) {
        self.max = Some(self.max.map_or(v, |m| m.min(v)));
    }

    fn narrow_by(&mut self, expr: &Expr) {
        match expr {
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::And,
                right,
            }) => {
                self.narrow_by(left);
                self.narrow_by(right);
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (op, value) = match (is_time(left), is_time(right)) {
                    (true, false) => (*op, timestamp_nanos(right)),
                    (false, true) => match op.swap() {
                        Some(swapped) => (swapped, timestamp_nanos(left)),
                        None => return,
                    },
                    _ => return,
                };
                let Some(v) = value else { return };
                match op {
                    Operator::Gt => self.lower(v.saturating_add(1)),
                    Operator::GtEq => self.lower(v),
                    Operator::Lt => self.upper(v.saturating_sub(1)),
                    Operator::LtEq => self.upper(v),
                    Operator::Eq => {
                        self.lower(v);
                        self.upper(v);
                    }
                    _ => {}
                }
            }
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) if is_time(expr) => {
                if let Some(lo) = timestamp_nanos(low) {
                    self.lower(lo);
                }
                if let Some(hi) = timestamp_nanos(high) {
                    self.upper(hi);
                }
            }
            _ => {}
        }
    }
}

fn is_time(expr: &Expr) -> bool {
    match expr {
        Expr::Column(c) => c.name == TIME_COLUMN,
        _ => false,
    }
}

/// A timestamp literal of any unit, in nanoseconds.
fn timestamp_nanos(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn ts(v: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(v),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn narrows_by_comparisons_and_between() {
        let r = TimeRange::from_filters(&[col("time").gt_eq(ts(10)), ts(20).gt(col("time"))]);
        assert_eq!(
            r,
            TimeRange {
                min: Some(10),
                max: Some(19)
            }
        );
        let r = TimeRange::from_filters(&[col("time").between(ts(5), ts(7))]);
        assert_eq!(
            r,
            TimeRange {
                min: Some(5),
                max: Some(7)
            }
        );
        assert!(r.overlaps(7, 100) && !r.overlaps(8, 100) && !r.overlaps(0, 4));
    }

    #[test]
    fn unknown_filters_keep_everything() {
        let r = TimeRange::from_filters(&[col("host").eq(lit("a")), col("time").gt(col("other"))]);
        assert_eq!(r, TimeRange::default());
        assert!(r.overlaps(i64::MIN, i64::MAX));
    }
}
