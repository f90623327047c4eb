//! What the rollup rewrite reads off a plan: the scan and its conjuncts, `time` bounds, time
//! buckets (`date_bin`, `date_trunc`), the aggregates asked for, and the whole rollup buckets
//! inside a range. `None` everywhere means "another shape": the rewrite leaves it alone.

use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::expr::{AggregateFunction, ScalarFunction};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator, TableScan};

use crate::config::RollupAggregate;
use crate::storage::TIME_COLUMN;
use crate::storage::rollup::RollupDef;

/// What one asked-for aggregate needs from the partial rows.
#[derive(Debug, Clone)]
pub(super) enum Need {
    Avg(String),
    Min(String),
    Max(String),
    Sum(String),
    Count(String),
    Rows,
}

/// `(scan, its conjuncts)` for `Filter(TableScan)` or a bare `TableScan`, under projections
/// that only pass columns through.
pub(super) fn source_of(input: &LogicalPlan) -> Option<(&TableScan, Vec<Expr>)> {
    match input {
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            source_of(&p.input)
        }
        LogicalPlan::TableScan(scan) => Some((scan, scan.filters.clone())),
        LogicalPlan::Filter(filter) => {
            let LogicalPlan::TableScan(scan) = filter.input.as_ref() else {
                return None;
            };
            let mut conjuncts: Vec<Expr> = split_conjunction(&filter.predicate)
                .into_iter()
                .cloned()
                .collect();
            for e in &scan.filters {
                if !conjuncts.contains(e) {
                    conjuncts.push(e.clone());
                }
            }
            Some((scan, conjuncts))
        }
        _ => None,
    }
}

/// `time <op> timestamp literal` (either side), as `(op with time on the left, nanoseconds)`.
pub(super) fn time_bound(e: &Expr) -> Option<(Operator, i64)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    let (op, value) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) if c.name == TIME_COLUMN => (*op, v),
        (Expr::Literal(v, _), Expr::Column(c)) if c.name == TIME_COLUMN => (op.swap()?, v),
        _ => return None,
    };
    match value {
        ScalarValue::TimestampNanosecond(Some(ns), _) => Some((op, *ns)),
        _ => None,
    }
}

/// `(width, origin)` in nanoseconds of `date_bin(width, time[, origin])` or
/// `date_trunc('second'|'minute'|'hour'|'day', time)`.
pub(super) fn bucket_of(e: &Expr) -> Option<(i64, i64)> {
    let Expr::ScalarFunction(ScalarFunction { func, args }) = e else {
        return None;
    };
    let on_time = |a: &Expr| matches!(a, Expr::Column(c) if c.name == TIME_COLUMN);
    match (func.name(), args.as_slice()) {
        ("date_bin", [Expr::Literal(width, _), time, rest @ ..]) if on_time(time) => {
            let origin = match rest {
                [] => 0,
                [Expr::Literal(ScalarValue::TimestampNanosecond(Some(o), _), _)] => *o,
                _ => return None,
            };
            let width = interval_ns(width)?;
            (width > 0).then_some((width, origin))
        }
        ("date_trunc", [Expr::Literal(ScalarValue::Utf8(Some(unit)), _), time])
            if on_time(time) =>
        {
            let secs = match unit.to_ascii_lowercase().as_str() {
                "second" => 1,
                "minute" => 60,
                "hour" => 3_600,
                "day" => 86_400,
                _ => return None,
            };
            Some((secs * 1_000_000_000, 0))
        }
        _ => None,
    }
}

pub(super) fn interval_ns(v: &ScalarValue) -> Option<i64> {
    const DAY_NS: i64 = 86_400_000_000_000;
    match v {
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => (i.days as i64)
            .checked_mul(DAY_NS)?
            .checked_add(i.nanoseconds),
        ScalarValue::IntervalDayTime(Some(i)) => (i.days as i64)
            .checked_mul(DAY_NS)?
            .checked_add((i.milliseconds as i64).checked_mul(1_000_000)?),
        _ => None,
    }
}

pub(super) fn need_of(e: &Expr) -> Option<Need> {
    let Expr::AggregateFunction(AggregateFunction { func, params }) = e else {
        return None;
    };
    if params.distinct
        || params.filter.is_some()
        || !params.order_by.is_empty()
        || params.null_treatment.is_some()
    {
        return None;
    }
    match (func.name(), params.args.as_slice()) {
        ("count", [Expr::Literal(v, _)]) if !v.is_null() => Some(Need::Rows),
        (name, [Expr::Column(c)]) => {
            let f = c.name.clone();
            Some(match name {
                "avg" => Need::Avg(f),
                "min" => Need::Min(f),
                "max" => Need::Max(f),
                "sum" => Need::Sum(f),
                "count" => Need::Count(f),
                _ => return None,
            })
        }
        _ => None,
    }
}

pub(super) fn answers(def: &RollupDef, need: &Need) -> bool {
    let kept = |f: &str| def.fields.iter().any(|(name, _)| name == f);
    match need {
        Need::Avg(f) => kept(f) && def.aggregates.contains(&RollupAggregate::Avg),
        Need::Min(f) => kept(f) && def.aggregates.contains(&RollupAggregate::Min),
        Need::Max(f) => kept(f) && def.aggregates.contains(&RollupAggregate::Max),
        Need::Sum(f) => kept(f) && def.aggregates.contains(&RollupAggregate::Sum),
        Need::Count(f) => kept(f) && def.aggregates.contains(&RollupAggregate::Count),
        Need::Rows => def.aggregates.contains(&RollupAggregate::Count),
    }
}

pub(super) fn overlaps(min: i64, max: i64, lo: Option<i64>, hi: Option<i64>) -> bool {
    lo.is_none_or(|l| max >= l) && hi.is_none_or(|h| min < h)
}

/// `[ceil(lo), floor(hi))` on the rollup's grid: the whole buckets inside the range.
pub(super) fn interior(lo: Option<i64>, hi: Option<i64>, every: i64) -> (Option<i64>, Option<i64>) {
    // Near the end of time the ceiling saturates: the interior is then empty, not wrapped.
    let ceil = |v: i64| {
        let r = v.rem_euclid(every);
        if r == 0 {
            v
        } else {
            (v - r).saturating_add(every)
        }
    };
    (lo.map(ceil), hi.map(|v| v - v.rem_euclid(every)))
}

pub(super) fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unalias(&a.expr),
        other => other,
    }
}

pub(super) fn has_subquery(e: &Expr) -> bool {
    e.exists(|x| {
        Ok(matches!(
            x,
            Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
        ))
    })
    .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interior_is_the_whole_buckets_in_range() {
        assert_eq!(interior(Some(61), Some(241), 60), (Some(120), Some(240)));
        assert_eq!(interior(Some(-61), None, 60), (Some(-60), None));
        // Near the end of time nothing wraps around: the interior is empty.
        let (lo, hi) = interior(Some(i64::MAX - 5), Some(i64::MAX), 60);
        assert!(lo >= hi, "{lo:?} {hi:?}");
    }
}
