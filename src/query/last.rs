//! `last_rows('table')`: the newest row of every series of a table, from the storage layer's
//! last-value cache instead of a scan — the TSBS "lastpoint" question (`SELECT DISTINCT ON
//! (hostname) * … ORDER BY hostname, time DESC`) in a few microseconds, whatever the table's
//! size. It is a table like any other: filter, join and aggregate it in SQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, Result, ScalarValue, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::storage::{Table, TenantStore};

/// The function's name in SQL.
pub const NAME: &str = "last_rows";

/// `last_rows` bound to one tenant: it reaches that tenant's tables only.
#[derive(Debug)]
pub struct LastRowsFunction {
    pub tenant: Arc<TenantStore>,
    /// Counts the reads (`opsboard_last_rows_reads_total`): how often the cache spared a scan.
    pub reads: Arc<AtomicU64>,
}

impl TableFunctionImpl for LastRowsFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let name = match args.exprs() {
            [Expr::Literal(ScalarValue::Utf8(Some(name)), _)] => name,
            _ => return plan_err!("{NAME}() takes one table name as a string: {NAME}('cpu')"),
        };
        let Some(table) = self.tenant.table(name) else {
            return plan_err!("{NAME}('{name}'): no table named '{name}'");
        };
        Ok(Arc::new(LastRowsTable {
            schema: table.arrow_schema(),
            tenant: self.tenant.clone(),
            table,
            reads: self.reads.clone(),
        }))
    }
}

#[derive(Debug)]
struct LastRowsTable {
    tenant: Arc<TenantStore>,
    table: Arc<Table>,
    schema: SchemaRef,
    reads: Arc<AtomicU64>,
}

#[async_trait]
impl TableProvider for LastRowsTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let rows = self
            .tenant
            .last_rows(&self.table)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        // The table may have grown a column since planning: answer in the planned schema.
        let partitions = match rows {
            Some(rows) => vec![vec![
                crate::storage::align_batch(&rows, &self.schema)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?,
            ]],
            None => vec![vec![]],
        };
        Ok(MemorySourceConfig::try_new_exec(
            &partitions,
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
