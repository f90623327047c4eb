//! Functions that allocate outside the query's memory pool, capped before they run:
//! `repeat`, `lpad`, `rpad`, `array_repeat`, `array_resize` and the array forms of `range` and
//! `generate_series` may make at most `query.max_value_bytes` per value and the query's memory
//! limit per call; the table forms of `range`/`generate_series` at most
//! `query.max_generated_rows` rows. The size is worked out from the arguments, so a refused
//! call allocates nothing. Each function keeps its name, signature and behaviour otherwise.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, LargeStringArray};
use arrow::datatypes::{DataType, FieldRef, IntervalUnit, TimeUnit};
use datafusion::catalog::{TableFunction, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result as DfResult, ScalarValue, plan_err, resources_err};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

use crate::config::QueryConfig;

/// How a capped function's output grows with its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(text, n)`: the text's bytes × n.
    Repeat,
    /// `lpad/rpad(text, n[, fill])`: n characters of up to 4 bytes.
    PadTo,
    /// `array_repeat(x, n)`, `array_resize(list, n[, x])`: n elements (8 bytes counted each).
    Elements,
    /// `range/generate_series([start,] stop[, step])` as arrays: one element per step, the
    /// stop included for `generate_series`.
    Series { inclusive: bool },
}

const CAPPED: &[(&str, Growth)] = &[
    ("repeat", Growth::Repeat),
    ("lpad", Growth::PadTo),
    ("rpad", Growth::PadTo),
    ("array_repeat", Growth::Elements),
    ("array_resize", Growth::Elements),
    ("range", Growth::Series { inclusive: false }),
    ("generate_series", Growth::Series { inclusive: true }),
];

/// The capped functions, made once and registered into every query's context.
#[derive(Debug)]
pub struct Caps {
    scalars: Vec<ScalarUDF>,
    tables: Vec<(String, Arc<dyn TableFunctionImpl>)>,
}

impl Caps {
    pub fn new(config: &QueryConfig) -> Self {
        let defaults = SessionContext::new();
        let limits = Limits {
            value_bytes: config.max_value_bytes,
            call_bytes: config.memory_limit_bytes.max(config.max_value_bytes),
        };
        let scalars = CAPPED
            .iter()
            .filter_map(|(name, growth)| {
                let inner = defaults.udf(name).ok()?;
                Some(ScalarUDF::new_from_impl(Capped {
                    inner: inner.as_ref().clone(),
                    growth: *growth,
                    limits,
                }))
            })
            .collect();
        let tables = ["range", "generate_series"]
            .into_iter()
            .filter_map(|name| {
                let inner = defaults.table_function(name).ok()?;
                let capped: Arc<dyn TableFunctionImpl> = Arc::new(CappedSeries {
                    inner,
                    max_rows: config.max_generated_rows,
                });
                Some((name.to_string(), capped))
            })
            .collect();
        Self { scalars, tables }
    }

    /// Puts the capped functions in place of DataFusion's own in `ctx`.
    pub fn install(&self, ctx: &SessionContext) {
        for udf in &self.scalars {
            ctx.register_udf(udf.clone());
        }
        for (name, udtf) in &self.tables {
            ctx.register_udtf(name, udtf.clone());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Limits {
    value_bytes: usize,
    call_bytes: usize,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Capped {
    inner: ScalarUDF,
    growth: Growth,
    limits: Limits,
}

impl Capped {
    fn check(&self, args: &ScalarFunctionArgs) -> DfResult<()> {
        let name = self.inner.name();
        let rows = args.number_rows.max(1);
        let sizes = value_sizes(self.growth, &args.args, rows)?;
        let mut total: u64 = 0;
        for size in sizes {
            if size > self.limits.value_bytes as u64 {
                return resources_err!(
                    "{name}() would make a value of {size} bytes; query.max_value_bytes is {}",
                    self.limits.value_bytes
                );
            }
            total = total.saturating_add(size);
        }
        if total > self.limits.call_bytes as u64 {
            return resources_err!(
                "{name}() would make {total} bytes for {rows} rows; query.memory_limit_bytes is {}",
                self.limits.call_bytes
            );
        }
        Ok(())
    }
}

impl ScalarUDFImpl for Capped {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        self.inner.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        self.check(&args)?;
        self.inner.invoke_with_args(args)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        self.inner.inner().simplify(args, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> DfResult<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> DfResult<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// The bytes each output value would take.
fn value_sizes(growth: Growth, args: &[ColumnarValue], rows: usize) -> DfResult<Vec<u64>> {
    let column = |i: usize| args.get(i).map(|a| a.to_array(rows)).transpose();
    let counts = |i: usize| -> DfResult<Vec<u64>> {
        Ok(match column(i)? {
            Some(a) => ints(&a)?
                .iter()
                .map(|n| n.unwrap_or(0).max(0) as u64)
                .collect(),
            None => vec![0; rows],
        })
    };
    Ok(match growth {
        Growth::Repeat => {
            let lengths = match column(0)? {
                Some(a) => text_lengths(&a)?,
                None => vec![0; rows],
            };
            let n = counts(1)?;
            lengths
                .iter()
                .zip(n)
                .map(|(l, n)| l.saturating_mul(n))
                .collect()
        }
        Growth::PadTo => counts(1)?.iter().map(|n| n.saturating_mul(4)).collect(),
        Growth::Elements => counts(1)?.iter().map(|n| n.saturating_mul(8)).collect(),
        Growth::Series { inclusive } => {
            let values: Vec<Vec<Option<i64>>> = (0..args.len())
                .map(|i| column(i)?.map_or(Ok(vec![None; rows]), |a| series_values(&a)))
                .collect::<DfResult<_>>()?;
            (0..rows)
                .map(|row| {
                    let at = |i: usize| values.get(i).and_then(|v| v[row]);
                    let (start, stop, step) = match values.len() {
                        1 => (Some(0), at(0), Some(1)),
                        2 => (at(0), at(1), Some(1)),
                        _ => (at(0), at(1), at(2)),
                    };
                    series_len(start, stop, step, inclusive).saturating_mul(8)
                })
                .collect()
        }
    })
}

/// Steps from `start` to `stop` (nulls and a zero step make none). The direction is not
/// checked: a series running the wrong way is empty, and counting it is only an overestimate.
fn series_len(start: Option<i64>, stop: Option<i64>, step: Option<i64>, inclusive: bool) -> u64 {
    match (start, stop, step) {
        (Some(a), Some(b), Some(s)) if s != 0 => {
            let span = (b as i128 - a as i128).unsigned_abs();
            let step = s.unsigned_abs() as u128;
            let n = if inclusive {
                span / step + 1
            } else {
                span.div_ceil(step)
            };
            n.min(u64::MAX as u128) as u64
        }
        _ => 0,
    }
}

fn ints(array: &ArrayRef) -> DfResult<Int64Array> {
    let cast = arrow::compute::cast(array, &DataType::Int64)?;
    Ok(cast
        .as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .unwrap_or_else(|| Int64Array::from(vec![None; array.len()])))
}

fn text_lengths(array: &ArrayRef) -> DfResult<Vec<u64>> {
    let cast = arrow::compute::cast(array, &DataType::LargeUtf8)?;
    let Some(text) = cast.as_any().downcast_ref::<LargeStringArray>() else {
        return Ok(vec![0; array.len()]);
    };
    Ok((0..text.len())
        .map(|i| match text.is_null(i) {
            true => 0,
            false => text.value(i).len() as u64,
        })
        .collect())
}

/// A series bound or step as one number: integers as they are, dates and timestamps in
/// nanoseconds, intervals in nanoseconds with a month counted as its shortest (28 days), so
/// the count is never underestimated.
fn series_values(array: &ArrayRef) -> DfResult<Vec<Option<i64>>> {
    let as_ns = |a: &ArrayRef| -> DfResult<Vec<Option<i64>>> {
        let ts = arrow::compute::cast(a, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
        Ok(ints(&ts)?.iter().collect())
    };
    match array.data_type() {
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => as_ns(array),
        DataType::Interval(_) => {
            let cast =
                arrow::compute::cast(array, &DataType::Interval(IntervalUnit::MonthDayNano))?;
            let intervals = cast
                .as_any()
                .downcast_ref::<arrow::array::IntervalMonthDayNanoArray>()
                .cloned();
            Ok(match intervals {
                Some(iv) => iv
                    .iter()
                    .map(|v| {
                        v.map(|v| {
                            const DAY: i64 = 86_400_000_000_000;
                            (v.months as i64 * 28 * DAY)
                                .saturating_add(v.days as i64 * DAY)
                                .saturating_add(v.nanoseconds)
                        })
                    })
                    .collect(),
                None => vec![None; array.len()],
            })
        }
        _ => Ok(ints(array)?.iter().collect()),
    }
}

/// `range`/`generate_series` as tables, refused past `query.max_generated_rows`.
#[derive(Debug)]
struct CappedSeries {
    inner: Arc<TableFunction>,
    max_rows: u64,
}

impl TableFunctionImpl for CappedSeries {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let literals: Vec<ColumnarValue> = args
            .exprs()
            .iter()
            .map(|e| match e {
                Expr::Literal(v, _) => ColumnarValue::Scalar(v.clone()),
                _ => ColumnarValue::Scalar(ScalarValue::Null),
            })
            .collect();
        let inclusive = self.inner.name() == "generate_series";
        let rows = value_sizes(Growth::Series { inclusive }, &literals, 1)?
            .first()
            .map_or(0, |bytes| bytes / 8);
        if rows > self.max_rows {
            return plan_err!(
                "{}() would make {rows} rows; query.max_generated_rows is {}",
                self.inner.name(),
                self.max_rows
            );
        }
        self.inner.create_table_provider_with_args(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(sql: &str) -> Result<usize, String> {
        let config = QueryConfig {
            max_value_bytes: 1000,
            memory_limit_bytes: 100_000,
            max_generated_rows: 5000,
            ..QueryConfig::default()
        };
        let ctx = SessionContext::new();
        Caps::new(&config).install(&ctx);
        let batches = async { ctx.sql(sql).await?.collect().await }
            .await
            .map_err(|e| e.to_string())?;
        Ok(batches.iter().map(|b| b.num_rows()).sum())
    }

    #[tokio::test]
    async fn allocating_functions_work_under_their_caps_and_are_refused_over_them() {
        assert_eq!(run("SELECT repeat('ab', 500)").await, Ok(1));
        let err = run("SELECT repeat('ab', 501)").await.unwrap_err();
        assert!(
            err.contains("repeat() would make a value of 1002 bytes"),
            "{err}"
        );
        assert!(err.contains("query.max_value_bytes is 1000"), "{err}");
        // Per value within the cap, but many rows at once (a constant is made once).
        assert_eq!(
            run("SELECT repeat('x', 900) FROM range(200)").await,
            Ok(200)
        );
        let err = run("SELECT repeat('x', value + 800) FROM range(200)")
            .await
            .unwrap_err();
        assert!(err.contains("query.memory_limit_bytes"), "{err}");
        for sql in [
            "SELECT lpad('x', 1000000)",
            "SELECT rpad('x', 1000000, 'y')",
            "SELECT array_repeat(1, 1000000)",
            "SELECT list_repeat(1, 1000000)",
            "SELECT array_resize([1], 1000000)",
            "SELECT range(1000000)",
            "SELECT generate_series(1, 1000000)",
            "SELECT range(DATE '2020-01-01', DATE '2030-01-01', INTERVAL '1 minute')",
        ] {
            let err = run(sql).await.unwrap_err();
            assert!(err.contains("query.max_value_bytes"), "{sql}: {err}");
        }
        assert_eq!(run("SELECT lpad('x', 10), range(10)").await, Ok(1));
    }

    #[tokio::test]
    async fn table_series_are_capped_in_rows() {
        assert_eq!(run("SELECT * FROM range(5000)").await, Ok(5000));
        assert_eq!(
            run("SELECT * FROM generate_series(1, 5000)").await,
            Ok(5000)
        );
        let err = run("SELECT * FROM generate_series(0, 5000)")
            .await
            .unwrap_err();
        assert!(
            err.contains("generate_series() would make 5001 rows"),
            "{err}"
        );
        let err = run("SELECT count(*) FROM range(1000000000000) a")
            .await
            .unwrap_err();
        assert!(err.contains("query.max_generated_rows is 5000"), "{err}");
        let err = run(
            "SELECT * FROM range(TIMESTAMP '2020-01-01', TIMESTAMP '2021-01-01', INTERVAL '1 second')",
        )
        .await
        .unwrap_err();
        assert!(err.contains("max_generated_rows"), "{err}");
        // Folded constants count too.
        assert!(run("SELECT * FROM range(1000 * 1000)").await.is_err());
    }
}
