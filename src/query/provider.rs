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
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;

use super::page_index::PageIndexReaderFactory;
use super::pruning::TimeRange;
use crate::storage::rollup::RollupDef;
use crate::storage::{ParquetFile, TableSnapshot, TenantStore};

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
            rollups: self.tenant.rollups_of(name),
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
    pub(super) snapshot: TableSnapshot,
    /// The rollups queries on this table may read instead (none for the raw parts of a plan
    /// the rollup rewrite already made).
    pub(super) rollups: Vec<RollupDef>,
    pub(super) store_url: ObjectStoreUrl,
    pub(super) files_scanned: Arc<AtomicU64>,
}

impl TenantTable {
    /// The same snapshot without rollups; with `not_held_by`, only the buffer and the files that
    /// rollup does not hold.
    pub(super) fn raw_part(&self, not_held_by: Option<&str>) -> Self {
        let mut snapshot = self.snapshot.clone();
        if let Some(rollup) = not_held_by {
            snapshot
                .files
                .retain(|f| !f.rolled_up.iter().any(|r| r == rollup));
        }
        snapshot.rollups.clear();
        Self {
            snapshot,
            rollups: vec![],
            store_url: self.store_url.clone(),
            files_scanned: self.files_scanned.clone(),
        }
    }
}

/// One rollup's files as a table in the rollup's stored layout.
#[derive(Debug)]
pub struct RollupTable {
    pub(super) schema: SchemaRef,
    pub(super) files: Vec<ParquetFile>,
    pub(super) store_url: ObjectStoreUrl,
    pub(super) files_scanned: Arc<AtomicU64>,
}

#[async_trait]
impl TableProvider for RollupTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let scan = FileScan {
            schema: self.schema.clone(),
            store_url: &self.store_url,
            files_scanned: &self.files_scanned,
            projection,
            filters,
            limit,
        };
        match scan.parquet(state, &self.files).await? {
            Some(plan) => Ok(plan),
            None => Ok(Arc::new(EmptyExec::new(scan.projected()?))),
        }
    }
}

/// The Parquet part of a scan: files pruned by time, row groups by the filters.
struct FileScan<'a> {
    schema: SchemaRef,
    store_url: &'a ObjectStoreUrl,
    files_scanned: &'a AtomicU64,
    projection: Option<&'a Vec<usize>>,
    filters: &'a [Expr],
    limit: Option<usize>,
}

impl FileScan<'_> {
    fn projected(&self) -> Result<SchemaRef> {
        Ok(match self.projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        })
    }

    async fn parquet(
        &self,
        state: &dyn Session,
        all: &[ParquetFile],
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let range = TimeRange::from_filters(self.filters);
        let files: Vec<_> = all
            .iter()
            .filter(|f| range.overlaps(f.min_time, f.max_time))
            .collect();
        self.files_scanned
            .fetch_add(files.len() as u64, Ordering::Relaxed);
        if files.is_empty() {
            return Ok(None);
        }
        let parquet_options = state.table_options().parquet.clone();
        let size_hint = parquet_options.global.metadata_size_hint;
        let runtime = state.runtime_env();
        let readers = PageIndexReaderFactory::new(
            runtime.object_store(self.store_url)?,
            runtime.cache_manager.get_file_metadata_cache(),
        );
        let mut source = ParquetSource::new(self.schema.clone())
            .with_table_parquet_options(parquet_options)
            .with_parquet_file_reader_factory(Arc::new(readers));
        if let Some(hint) = size_hint {
            source = source.with_metadata_size_hint(hint);
        }
        if let Some(predicate) = conjunction(self.filters.iter().cloned()) {
            let df_schema = DFSchema::try_from(self.schema.clone())?;
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
            .with_projection_indices(self.projection.cloned())?
            .with_limit(self.limit)
            .build();
        // Not `ParquetFormat::create_physical_plan`: it would put back DataFusion's reader
        // factory, which caches footers without their page index.
        Ok(Some(DataSourceExec::from_data_source(config)))
    }
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
        let scan = FileScan {
            schema: schema.clone(),
            store_url: &self.store_url,
            files_scanned: &self.files_scanned,
            projection,
            filters,
            limit,
        };
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = vec![];
        if let Some(files) = scan.parquet(state, &self.snapshot.files).await? {
            inputs.push(files);
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
            return Ok(Arc::new(EmptyExec::new(scan.projected()?)));
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
