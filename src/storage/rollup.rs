//! Rollups: a table's rows pre-aggregated per interval bucket and group-by tags, kept as their own
//! Parquet files beside the raw ones. Each rollup row holds, per field, the sum, count, minimum
//! and maximum of its bucket's raw rows (and `#rows`, the row count), so several files' rows for
//! one bucket combine exactly (a late write adds a second row for an old bucket; readers
//! re-aggregate). A rollup's files hold exactly the rows of the raw files that name it in
//! `rolled_up`; the query layer reads the other raw files and the buffer itself.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::functions::expr_fn::date_bin;
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::logical_expr::{Expr, cast, col, lit};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::ObjectStore;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::schema::{Column, ColumnKind, FieldType, TIME_COLUMN, TableSchema};
use super::{StorageError, merge};
use crate::config::{RollupAggregate, RollupConfig, TableConfig};

/// Column of the raw row count per rollup row.
pub const ROWS_COLUMN: &str = "#rows";

pub use super::schema::part_column;

/// One declared rollup of a table, in the storage's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupDef {
    /// `<seconds>s_<hash of group_by and fields>`: a changed declaration is a new rollup.
    pub name: String,
    pub interval_ns: i64,
    pub group_by: Vec<String>,
    pub fields: Vec<(String, FieldType)>,
    pub aggregates: Vec<RollupAggregate>,
    /// Kept this long (never shorter than the raw rows); `None` keeps them.
    pub retention: Option<std::time::Duration>,
}

impl RollupDef {
    /// Every rollup `config` declares, given the table's effective retention.
    pub fn declared(
        config: &TableConfig,
        table_retention: Option<std::time::Duration>,
    ) -> Vec<Self> {
        let mut defs: Vec<Self> = vec![];
        for rollup in &config.rollups {
            for def in Self::of_declaration(rollup, config, table_retention) {
                // Validation refuses a repeated interval; a stale file keeps the first.
                if !defs.iter().any(|d| d.name == def.name) {
                    defs.push(def);
                }
            }
        }
        defs
    }

    fn of_declaration(
        rollup: &RollupConfig,
        config: &TableConfig,
        table_retention: Option<std::time::Duration>,
    ) -> Vec<Self> {
        let fields = rollup.fields_of(&config.field_types());
        let mut group_by = rollup.group_by.clone();
        group_by.sort();
        let mut hash = Sha256::new();
        for part in group_by.iter().chain(fields.iter().map(|(f, _)| f)) {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let digest = hash.finalize();
        let retention = match (rollup.retention.map(|d| d.0), table_retention) {
            (Some(own), Some(table)) => Some(own.max(table)),
            (Some(own), None) => Some(own),
            (None, table) => table,
        };
        rollup
            .intervals
            .iter()
            .map(|interval| Self {
                name: format!(
                    "{}s_{:02x}{:02x}{:02x}{:02x}",
                    interval.0.as_secs(),
                    digest[0],
                    digest[1],
                    digest[2],
                    digest[3]
                ),
                interval_ns: interval.0.as_nanos() as i64,
                group_by: rollup.group_by.clone(),
                fields: fields.clone(),
                aggregates: if rollup.aggregates.is_empty() {
                    RollupAggregate::ALL.to_vec()
                } else {
                    rollup.aggregates.clone()
                },
                retention,
            })
            .collect()
    }

    /// The stored layout: `time` (bucket start), the group-by tags, `#rows`, and per field its
    /// sum (the field's type, float for floats), count, min and max.
    pub fn schema(&self) -> TableSchema {
        let mut columns = vec![Column {
            name: TIME_COLUMN.into(),
            kind: ColumnKind::Time,
        }];
        let field = |name: String, t: FieldType| Column {
            name,
            kind: ColumnKind::Field(t),
        };
        columns.extend(self.group_by.iter().map(|t| Column {
            name: t.clone(),
            kind: ColumnKind::Tag,
        }));
        columns.push(field(ROWS_COLUMN.into(), FieldType::Integer));
        for (name, t) in &self.fields {
            columns.push(field(part_column(name, "sum"), *t));
            columns.push(field(part_column(name, "count"), FieldType::Integer));
            columns.push(field(part_column(name, "min"), *t));
            columns.push(field(part_column(name, "max"), *t));
        }
        TableSchema::from_columns(columns)
    }

    /// Raw rows → partial rows: group by bucket and tags.
    fn of_raw(&self) -> (Vec<Expr>, Vec<Expr>) {
        let bucket = date_bin(
            lit(ScalarValue::new_interval_mdn(0, 0, self.interval_ns)),
            col(TIME_COLUMN),
            lit(ScalarValue::TimestampNanosecond(Some(0), None)),
        );
        let mut aggregates = vec![count(lit(1)).alias(ROWS_COLUMN)];
        for (f, _) in &self.fields {
            aggregates.push(sum(col(f)).alias(part_column(f, "sum")));
            aggregates.push(count(col(f)).alias(part_column(f, "count")));
            aggregates.push(min(col(f)).alias(part_column(f, "min")));
            aggregates.push(max(col(f)).alias(part_column(f, "max")));
        }
        (self.group_exprs(bucket), aggregates)
    }

    /// Partial rows → fewer partial rows (several files' rows of one bucket combined).
    fn of_partials(&self) -> (Vec<Expr>, Vec<Expr>) {
        let mut aggregates = vec![sum(quoted(ROWS_COLUMN)).alias(ROWS_COLUMN)];
        for (f, _) in &self.fields {
            for (part, combine) in [
                ("sum", sum as fn(Expr) -> Expr),
                ("count", sum),
                ("min", min),
                ("max", max),
            ] {
                let name = part_column(f, part);
                aggregates.push(combine(quoted(&name)).alias(name));
            }
        }
        (self.group_exprs(col(TIME_COLUMN)), aggregates)
    }

    fn group_exprs(&self, time: Expr) -> Vec<Expr> {
        std::iter::once(time.alias(TIME_COLUMN))
            .chain(self.group_by.iter().map(|t| col(t).alias(t)))
            .collect()
    }
}

/// Whether the partial rows come from raw files or from this rollup's own files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Raw,
    Partials,
}

/// `paths` (all read as `read_schema`) aggregated into `def`'s rows, sorted by tags then time as
/// the file writer expects. Each file is streamed a batch at a time; DataFusion aggregates
/// within `pool`.
pub async fn aggregate(
    objects: Arc<dyn ObjectStore>,
    paths: &[String],
    read_schema: SchemaRef,
    def: &RollupDef,
    source: Source,
    pool: Arc<dyn MemoryPool>,
) -> Result<SendableRecordBatchStream, StorageError> {
    let mut partitions: Vec<Arc<dyn PartitionStream>> = vec![];
    for path in paths {
        let stream = merge::file_input(&objects, path, &read_schema).await?;
        partitions.push(Arc::new(OneShot {
            schema: read_schema.clone(),
            stream: Mutex::new(Some(stream)),
        }));
    }
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(pool)
        .build_arc()?;
    let ctx =
        SessionContext::new_with_config_rt(SessionConfig::new().with_target_partitions(1), runtime);
    let input = StreamingTable::try_new(read_schema.clone(), partitions)?;
    let (group, aggregates) = match source {
        Source::Raw => def.of_raw(),
        Source::Partials => def.of_partials(),
    };
    let out = def.schema();
    let typed: Vec<Expr> = out
        .arrow_schema()
        .fields()
        .iter()
        .map(|f| cast(quoted(f.name()), f.data_type().clone()).alias(f.name()))
        .collect();
    let order = out
        .sort_columns()
        .into_iter()
        .map(|c| quoted(&c).sort(true, true))
        .collect();
    let df = ctx
        .read_table(Arc::new(input))?
        .aggregate(group, aggregates)?
        .select(typed)?
        .sort(order)?;
    Ok(df.execute_stream().await?)
}

/// `rows` passed through, adding up their `#rows` into `counted` (the raw rows aggregated).
pub fn counting_rows(
    rows: SendableRecordBatchStream,
    counted: Arc<std::sync::atomic::AtomicU64>,
) -> SendableRecordBatchStream {
    use futures::StreamExt;
    let schema = rows.schema();
    let counting = rows.inspect(move |batch| {
        let Ok(batch) = batch else { return };
        if let Some(n) = batch
            .column_by_name(ROWS_COLUMN)
            .and_then(|c| c.as_any().downcast_ref::<arrow::array::Int64Array>())
        {
            let sum = arrow::compute::sum(n).unwrap_or(0).max(0) as u64;
            counted.fetch_add(sum, std::sync::atomic::Ordering::Relaxed);
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, counting))
}

fn quoted(name: &str) -> Expr {
    Expr::Column(datafusion::common::Column::from_name(name))
}

/// A file's batches as a partition DataFusion reads once.
struct OneShot {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl std::fmt::Debug for OneShot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneShot").finish_non_exhaustive()
    }
}

impl PartitionStream for OneShot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        match self.stream.lock().take() {
            Some(stream) => stream,
            None => Box::pin(RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::once(async {
                    Err(DataFusionError::Internal(
                        "a rollup input is read once".into(),
                    ))
                }),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DeclaredType;

    fn table(rollups: &str) -> TableConfig {
        TableConfig {
            tags: vec!["host".into(), "dc".into()],
            fields: [
                ("usage".to_string(), DeclaredType::Float),
                ("errors".to_string(), DeclaredType::Integer),
            ]
            .into(),
            rollups: vec![serde_yaml::from_str::<RollupConfig>(rollups).unwrap()],
            ..Default::default()
        }
    }

    #[test]
    fn a_changed_declaration_is_a_new_rollup() {
        let a = RollupDef::declared(&table("{intervals: [1m, 1h], group_by: [host]}"), None);
        let b = RollupDef::declared(&table("{intervals: [1m], group_by: [host, dc]}"), None);
        assert_eq!(a.len(), 2);
        assert!(a[0].name.starts_with("60s_") && a[1].name.starts_with("3600s_"));
        assert_ne!(a[0].name, b[0].name);
        let same = RollupDef::declared(&table("{intervals: [1m], group_by: [host]}"), None);
        assert_eq!(a[0].name, same[0].name);
    }

    #[test]
    fn retention_is_never_shorter_than_the_tables() {
        let day = std::time::Duration::from_secs(86_400);
        let defs = RollupDef::declared(&table("{intervals: [1h]}"), Some(day));
        assert_eq!(defs[0].retention, Some(day));
        let defs = RollupDef::declared(&table("{intervals: [1h], retention: 30d}"), Some(day));
        assert_eq!(defs[0].retention, Some(day * 30));
    }

    #[test]
    fn stored_columns_per_field() {
        let def = &RollupDef::declared(&table("{intervals: [1m], group_by: [host]}"), None)[0];
        let names: Vec<String> = def
            .schema()
            .columns()
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(
            names,
            [
                "time",
                "host",
                "#rows",
                "errors#sum",
                "errors#count",
                "errors#min",
                "errors#max",
                "usage#sum",
                "usage#count",
                "usage#min",
                "usage#max"
            ]
        );
    }
}
