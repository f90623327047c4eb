//! DataFusion's view of a tenant: a schema provider that lists only this tenant's tables, and
//! a table provider that serves the in-memory buffer and the live Parquet files as one table,
//! skipping files whose time bounds miss the query's time filters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;

use super::pruning::TimeRange;
use crate::storage::{TableSnapshot, TenantStore};

/// All tables of one tenant; nothing else is reachable from its SessionContext.
#[derive(Debug)]
pub struct TenantSchema {
    tenant: Arc<TenantStore>,
    store_url: ObjectStoreUrl,
    files_scanned: Arc<AtomicU64>,
}

impl TenantSchema {
    /// `files_scanned` counts the Parquet files scans plan to open, after time pruning.
    pub fn new(
        tenant: Arc<TenantStore>,
        store_url: ObjectStoreUrl,
        files_scanned: Arc<AtomicU64>,
    ) -> Self {
        Self {
            tenant,
            store_url,
            files_scanned,
        }
    }
}

#[async_trait]
impl SchemaProvider for TenantSchema {
    fn table_names(&self) -> Vec<String> {
        self.tenant
            .tables()
            .iter()
            .map(|t| t.name.clone())
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let Some(table) = self.tenant.table(name) else {
            return Ok(None);
        };
        // One snapshot per query: schema, buffer and files stay consistent from plan to end.
        let snapshot = table
            .snapshot()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Some(Arc::new(TenantTable {
            snapshot,
            store_url: self.store_url.clone(),
            files_scanned: self.files_scanned.clone(),
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tenant.table(name).is_some()
    }
}

/// A table as of one snapshot.
#[derive(Debug)]
pub struct TenantTable {
    snapshot: TableSnapshot,
    store_url: ObjectStoreUrl,
    files_scanned: Arc<AtomicU64>,
}

#[async_trait]
impl TableProvider for TenantTable {
    fn schema(&self) -> SchemaRef {
        self.snapshot.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Inexact: files and row groups are pruned, DataFusion still filters the rows.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = self.snapshot.schema.clone();
        let range = TimeRange::from_filters(filters);
        let files: Vec<_> = self
            .snapshot
            .files
            .iter()
            .filter(|f| range.overlaps(f.min_time, f.max_time))
            .collect();
        self.files_scanned
            .fetch_add(files.len() as u64, Ordering::Relaxed);
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = vec![];
        if !files.is_empty() {
            let mut source = ParquetSource::new(schema.clone());
            if let Some(predicate) = conjunction(filters.iter().cloned()) {
                let df_schema = DFSchema::try_from(schema.clone())?;
                source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
            }
            let partitions = state.config().target_partitions().max(1);
            let mut groups: Vec<Vec<PartitionedFile>> = vec![vec![]; partitions.min(files.len())];
            let n = groups.len();
            for (i, f) in files.iter().enumerate() {
                groups[i % n].push(PartitionedFile::new(f.path.clone(), f.size));
            }
            let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
                .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
            inputs.push(
                ParquetFormat::default()
                    .create_physical_plan(state, config)
                    .await?,
            );
        }
        let batches: Vec<_> = self
            .snapshot
            .batches
            .iter()
            .filter(|b| batch_overlaps(b, &range))
            .cloned()
            .collect();
        if !batches.is_empty() {
            // Spread buffered batches over the partitions so recent data is scanned in parallel.
            let partitions = state.config().target_partitions().clamp(1, batches.len());
            let mut parts: Vec<Vec<_>> = vec![vec![]; partitions];
            for (i, b) in batches.into_iter().enumerate() {
                parts[i % partitions].push(b);
            }
            inputs.push(MemorySourceConfig::try_new_exec(
                &parts,
                schema.clone(),
                projection.cloned(),
            )?);
        }
        if inputs.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(schema.project(p)?),
                None => schema,
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }
}

fn batch_overlaps(batch: &arrow::record_batch::RecordBatch, range: &TimeRange) -> bool {
    use arrow::array::{Array, TimestampNanosecondArray};
    if range.min.is_none() && range.max.is_none() {
        return true;
    }
    let Some(time) = batch
        .column_by_name(crate::storage::TIME_COLUMN)
        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
    else {
        return true;
    };
    match (arrow::compute::min(time), arrow::compute::max(time)) {
        (Some(lo), Some(hi)) if time.null_count() < time.len() => range.overlaps(lo, hi),
        _ => false,
    }
}
