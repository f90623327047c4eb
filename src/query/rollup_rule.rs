//! The rollup rewrite: an aggregate over a table with rollups, whose buckets are multiples of a
//! rollup's interval (on its grid), whose groups and filters use only the rollup's tags and time
//! ranges, and whose aggregates are avg/min/max/sum/count of kept fields, is answered from the
//! rollup's files plus raw rows for what they do not hold: the buffer, raw files not yet rolled
//! up, and the partial buckets at the range's ends. It runs below the SQL (EXPLAIN shows the
//! `@<rollup>` scan), for panels, alert rules and typed SQL alike.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result, ScalarValue, TableReference};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions::expr_fn::date_bin;
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{
    Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, Operator, Projection, TableScan, cast, lit,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::provider::{RollupTable, TenantTable};
use super::rollup_shape::{
    Need, answers, bucket_of, has_subquery, interior, need_of, overlaps, source_of, time_bound,
    unalias,
};
use crate::storage::TIME_COLUMN;
use crate::storage::rollup::{ROWS_COLUMN, RollupDef, part_column};

#[derive(Debug, Default)]
pub struct RollupRewrite {
    /// Counts the aggregates rewritten (`opsboard_rollup_reads_total`).
    pub reads: Arc<std::sync::atomic::AtomicU64>,
}

impl OptimizerRule for RollupRewrite {
    fn name(&self) -> &str {
        "opsboard_rollups"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = &plan else {
            return Ok(Transformed::no(plan));
        };
        match Candidate::of(aggregate).and_then(|c| c.plan()) {
            Some(rewritten) => {
                let plan = rewritten?;
                self.reads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(Transformed::yes(plan))
            }
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// An aggregate the rewrite can answer, with everything it found out about it.
struct Candidate<'a> {
    aggregate: &'a Aggregate,
    scan: &'a TableScan,
    table: Arc<dyn TableProvider>,
    conjuncts: Vec<Expr>,
    lo: Option<i64>,
    hi: Option<i64>,
    buckets: Vec<(i64, i64)>,
    tags: Vec<String>,
    needs: Vec<Need>,
}

impl<'a> Candidate<'a> {
    fn of(aggregate: &'a Aggregate) -> Option<Self> {
        let (scan, conjuncts) = source_of(&aggregate.input)?;
        if scan.fetch.is_some() {
            return None;
        }
        let table = source_as_provider(&scan.source).ok()?;
        let tenant_table = table.downcast_ref::<TenantTable>()?;
        if tenant_table.rollups.is_empty() {
            return None;
        }
        let mut candidate = Self {
            aggregate,
            scan,
            table: table.clone(),
            conjuncts,
            lo: None,
            hi: None,
            buckets: vec![],
            tags: vec![],
            needs: vec![],
        };
        candidate.read_shape()?;
        Some(candidate)
    }

    /// Time bounds, filtered and grouped tags, buckets and needs; `None` for any other shape.
    fn read_shape(&mut self) -> Option<()> {
        for conjunct in &self.conjuncts {
            if let Some((op, ns)) = time_bound(conjunct) {
                // Bounds as [lo, hi); a bound at the end of time must not wrap around.
                let next = ns.checked_add(1)?;
                match op {
                    Operator::GtEq => self.lo = Some(self.lo.map_or(ns, |l| l.max(ns))),
                    Operator::Gt => self.lo = Some(self.lo.map_or(next, |l| l.max(next))),
                    Operator::Lt => self.hi = Some(self.hi.map_or(ns, |h| h.min(ns))),
                    Operator::LtEq => self.hi = Some(self.hi.map_or(next, |h| h.min(next))),
                    _ => return None,
                }
                continue;
            }
            let columns = conjunct.column_refs();
            if columns.is_empty() || conjunct.is_volatile() || has_subquery(conjunct) {
                return None;
            }
            for c in columns {
                if c.name == TIME_COLUMN {
                    return None;
                }
                self.tags.push(c.name.clone());
            }
        }
        for expr in &self.aggregate.group_expr {
            match unalias(expr) {
                Expr::Column(c) if c.name != TIME_COLUMN => self.tags.push(c.name.clone()),
                other => self.buckets.push(bucket_of(other)?),
            }
        }
        for expr in &self.aggregate.aggr_expr {
            self.needs.push(need_of(unalias(expr))?);
        }
        Some(())
    }

    /// Of the rollups that hold something in range and answer every part exactly, the one with
    /// the fewest rows to read there.
    fn rollup(&self) -> Option<&RollupDef> {
        let table = self.table.downcast_ref::<TenantTable>()?;
        let usable = |def: &&RollupDef| {
            let every = def.interval_ns;
            let aligned = self
                .buckets
                .iter()
                .all(|(width, origin)| width % every == 0 && origin.rem_euclid(every) == 0);
            let (lo, hi) = interior(self.lo, self.hi, every);
            let nonempty = match (lo, hi) {
                (Some(l), Some(h)) => l < h,
                _ => true,
            };
            let holds = table.snapshot.files.iter().any(|f| {
                f.rolled_up.contains(&def.name) && overlaps(f.min_time, f.max_time, lo, hi)
            });
            aligned
                && nonempty
                && holds
                && self.tags.iter().all(|t| def.group_by.contains(t))
                && self.needs.iter().all(|n| answers(def, n))
        };
        let rows_in_range = |def: &&RollupDef| -> u64 {
            let (lo, hi) = interior(self.lo, self.hi, def.interval_ns);
            table
                .snapshot
                .rollups
                .get(&def.name)
                .into_iter()
                .flatten()
                .filter(|f| overlaps(f.min_time, f.max_time, lo, hi))
                .map(|f| f.rows)
                .sum()
        };
        table
            .rollups
            .iter()
            .filter(usable)
            .min_by_key(rows_in_range)
    }

    fn plan(&self) -> Option<Result<LogicalPlan>> {
        let def = self.rollup()?.clone();
        Some(self.rewritten(&def))
    }

    fn rewritten(&self, def: &RollupDef) -> Result<LogicalPlan> {
        let table = self.table.downcast_ref::<TenantTable>().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal("not a tenant table".into())
        })?;
        let q = self.scan.table_name.clone();
        let fields = self.fields();
        let (lo, hi) = interior(self.lo, self.hi, def.interval_ns);
        let inside = |r: &TableReference| -> Vec<Expr> {
            let time = || Expr::Column(Column::new(Some(r.clone()), TIME_COLUMN));
            lo.map(|l| time().gt_eq(ts(l)))
                .into_iter()
                .chain(hi.map(|h| time().lt(ts(h))))
                .collect()
        };
        // Held rows in range, from the rollup's own files.
        let r = TableReference::bare(format!("{}@{}", q.table(), def.name));
        let mut filters = inside(&r);
        for c in &self.conjuncts {
            if time_bound(c).is_none() {
                filters.push(requalify(c.clone(), &r)?);
            }
        }
        let rollup_table = RollupTable {
            schema: def.schema().arrow_schema(),
            files: table
                .snapshot
                .rollups
                .get(&def.name)
                .cloned()
                .unwrap_or_default(),
            store_url: table.store_url.clone(),
            files_scanned: table.files_scanned.clone(),
        };
        let mut union = filtered_scan(&r, Arc::new(rollup_table), filters)?
            .project(union_columns(def, &fields, Some(&r)))?;
        // Rows no rollup file holds: the buffer and raw files not rolled up yet.
        let mut filters = self.conjuncts.clone();
        filters.extend(inside(&q));
        let unheld = filtered_scan(&q, Arc::new(table.raw_part(Some(&def.name))), filters)?;
        union = union.union(partials(unheld, def, &fields, &q)?.build()?)?;
        // The partial buckets at either end, raw (none where the range starts or ends on the
        // rollup's grid, or is open) — one scan per end, each a plain time range, so only the
        // files of that end's day are read (an `OR` of both would read every file between).
        let time = Expr::Column(Column::new(Some(q.clone()), TIME_COLUMN));
        let ends = lo
            .filter(|l| Some(*l) != self.lo)
            .map(|l| time.clone().lt(ts(l)))
            .into_iter()
            .chain(
                hi.filter(|h| Some(*h) != self.hi)
                    .map(|h| time.clone().gt_eq(ts(h))),
            );
        for end in ends {
            let mut filters = self.conjuncts.clone();
            filters.push(end);
            let rows = filtered_scan(&q, Arc::new(table.raw_part(None)), filters)?;
            union = union.union(partials(rows, def, &fields, &q)?.build()?)?;
        }
        self.combine(union.alias(q.clone())?.build()?, &q)
    }

    /// The fields the needs read, each once.
    fn fields(&self) -> Vec<String> {
        let mut fields: Vec<String> = vec![];
        for need in &self.needs {
            if let Need::Avg(f) | Need::Min(f) | Need::Max(f) | Need::Sum(f) | Need::Count(f) = need
                && !fields.contains(f)
            {
                fields.push(f.clone());
            }
        }
        fields
    }

    /// The original groups over the partial rows, each aggregate recombined and given back its
    /// original name and type.
    fn combine(&self, input: LogicalPlan, q: &TableReference) -> Result<LogicalPlan> {
        let part = |f: &str, p: &str| Expr::Column(Column::new(Some(q.clone()), part_column(f, p)));
        let mut partial_exprs: Vec<Expr> = vec![];
        let mut slot = |e: Expr| -> Expr {
            let name = match partial_exprs.iter().position(|x| x == &e) {
                Some(i) => format!("__rollup_{i}"),
                None => {
                    partial_exprs.push(e);
                    format!("__rollup_{}", partial_exprs.len() - 1)
                }
            };
            Expr::Column(Column::from_name(name))
        };
        let mut finals = vec![];
        for need in &self.needs {
            finals.push(match need {
                Need::Avg(f) => {
                    let s = slot(sum(part(f, "sum")));
                    let c = slot(sum(part(f, "count")));
                    cast(s, DataType::Float64) / cast(c, DataType::Float64)
                }
                Need::Min(f) => slot(min(part(f, "min"))),
                Need::Max(f) => slot(max(part(f, "max"))),
                Need::Sum(f) => slot(sum(part(f, "sum"))),
                Need::Count(f) => coalesce(vec![slot(sum(part(f, "count"))), lit(0i64)]),
                Need::Rows => coalesce(vec![
                    slot(sum(Expr::Column(Column::new(Some(q.clone()), ROWS_COLUMN)))),
                    lit(0i64),
                ]),
            });
        }
        let partial_exprs: Vec<Expr> = partial_exprs
            .into_iter()
            .enumerate()
            .map(|(i, e)| e.alias(format!("__rollup_{i}")))
            .collect();
        let regrouped = LogicalPlan::Aggregate(Aggregate::try_new(
            Arc::new(input),
            self.aggregate.group_expr.clone(),
            partial_exprs,
        )?);
        let old = self.aggregate.schema.clone();
        let groups = self.aggregate.group_expr.len();
        let mut exprs = vec![];
        for (i, (qualifier, field)) in old.iter().enumerate() {
            let value = if i < groups {
                let (nq, nf) = regrouped.schema().qualified_field(i);
                Expr::Column(Column::new(nq.cloned(), nf.name()))
            } else {
                cast(finals[i - groups].clone(), field.data_type().clone())
            };
            exprs.push(value.alias_qualified(qualifier.cloned(), field.name()));
        }
        Ok(LogicalPlan::Projection(Projection::try_new(
            exprs,
            Arc::new(regrouped),
        )?))
    }
}

/// A timestamp literal in the time column's own type.
fn ts(ns: i64) -> Expr {
    let tz = match crate::storage::time_type() {
        DataType::Timestamp(_, tz) => tz,
        _ => None,
    };
    lit(ScalarValue::TimestampNanosecond(Some(ns), tz))
}

fn requalify(e: Expr, to: &TableReference) -> Result<Expr> {
    e.transform(|x| match x {
        Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new(
            Some(to.clone()),
            c.name,
        )))),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

fn filtered_scan(
    name: &TableReference,
    provider: Arc<dyn TableProvider>,
    filters: Vec<Expr>,
) -> Result<LogicalPlanBuilder> {
    let predicate = conjunction(filters.clone());
    let scan = LogicalPlanBuilder::scan_with_filters(
        name.clone(),
        provider_as_source(provider),
        None,
        filters,
    )?;
    match predicate {
        Some(p) => scan.filter(p),
        None => Ok(scan),
    }
}

/// The union's columns: time, the rollup's tags, `#rows` and each read field's four parts, in
/// the rollup's types (from `from`'s columns, or bare names after an aggregate).
fn union_columns(def: &RollupDef, fields: &[String], from: Option<&TableReference>) -> Vec<Expr> {
    let schema = def.schema().arrow_schema();
    let mut names = vec![TIME_COLUMN.to_string()];
    names.extend(def.group_by.iter().cloned());
    names.push(ROWS_COLUMN.into());
    for f in fields {
        for p in ["sum", "count", "min", "max"] {
            names.push(part_column(f, p));
        }
    }
    names
        .into_iter()
        .filter_map(|n| {
            let field = schema.field_with_name(&n).ok()?;
            let column = Expr::Column(Column::new(from.cloned(), n.clone()));
            Some(cast(column, field.data_type().clone()).alias(n))
        })
        .collect()
}

/// Raw rows → the rollup's partial rows for `fields`.
fn partials(
    raw: LogicalPlanBuilder,
    def: &RollupDef,
    fields: &[String],
    q: &TableReference,
) -> Result<LogicalPlanBuilder> {
    let column = |n: &str| Expr::Column(Column::new(Some(q.clone()), n));
    let mut group = vec![
        date_bin(
            lit(ScalarValue::new_interval_mdn(0, 0, def.interval_ns)),
            column(TIME_COLUMN),
            ts(0),
        )
        .alias(TIME_COLUMN),
    ];
    group.extend(def.group_by.iter().map(|t| column(t).alias(t)));
    let mut aggregates = vec![count(lit(1)).alias(ROWS_COLUMN)];
    for f in fields {
        aggregates.push(sum(column(f)).alias(part_column(f, "sum")));
        aggregates.push(count(column(f)).alias(part_column(f, "count")));
        aggregates.push(min(column(f)).alias(part_column(f, "min")));
        aggregates.push(max(column(f)).alias(part_column(f, "max")));
    }
    raw.aggregate(group, aggregates)?
        .project(union_columns(def, fields, None))
}
