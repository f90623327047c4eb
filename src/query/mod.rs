//! SQL over a tenant's tables. Each query gets a fresh DataFusion `SessionContext` whose only
//! catalog is the tenant's own ([`provider::TenantSchema`]) and whose only object store is the
//! tenant's prefix, so another tenant's data cannot be named — by table, by schema or through
//! `information_schema`. Each query also gets its own memory pool within the shared budget, a
//! place in the admission queues, capped allocating functions, and a deadline that covers
//! planning and streaming; it runs on the query threads ([`executor`]).

mod bind;
mod budget;
mod caps;
mod executor;
mod fragments;
mod guard;
mod last;
mod metadata;
mod metered;
mod page_index;
mod provider;
mod pruning;
mod rollup_rule;
mod rollup_shape;

pub use bind::{Params, type_placeholders};
pub use fragments::{parse_order_by, parse_where};
pub use guard::check_read_only;
pub use last::NAME as LAST_ROWS;
pub use pruning::TimeRange;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider};
use datafusion::common::{DataFusionError, ParamValues};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::DFParser;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use crate::config::QueryConfig;
use crate::storage::TenantStore;
use provider::TenantSchema;

/// A stream of result batches that ends with `Timeout` once the deadline passes.
pub type BatchStream = Pin<Box<dyn Stream<Item = Result<RecordBatch, QueryError>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("SQL syntax error: {message}")]
    Parse { message: String },
    #[error("only read queries are allowed; {what} is not")]
    NotReadOnly { what: String },
    #[error("{message}")]
    Plan { message: String },
    #[error("query exceeded its memory limit of {limit_bytes} bytes: {message}")]
    MemoryLimit { limit_bytes: usize, message: String },
    #[error("query exceeded its time limit of {0:?}")]
    Timeout(Duration),
    #[error("too many queries running; retry in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    #[error("query failed: {message}")]
    Execution { message: String },
    #[error("query failed reading storage: {message}")]
    Storage { message: String },
}

impl QueryError {
    /// True when the query itself was at fault (and a 4xx is the right answer).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, QueryError::Storage { .. })
    }
}

/// Builds per-query contexts and runs SQL; shared by the HTTP API, the CLI and the panels.
#[derive(Debug)]
pub struct QueryEngine {
    config: QueryConfig,
    budget: budget::Budget,
    executor: executor::Executor,
    caps: caps::Caps,
    /// Parquet footers and page indexes of all tenants, kept across queries.
    metadata: metadata::MetadataCache,
    /// Parquet files planned for reading since start, after pruning (a metric, and what the
    /// pruning tests assert on).
    files_scanned: Arc<AtomicU64>,
    last_rows_reads: Arc<AtomicU64>,
    rollup_reads: Arc<AtomicU64>,
    /// DataFusion's settings with its `DATAFUSION_*` environment variables, read once at start
    /// (every query's context starts from a copy).
    engine_options: SessionConfig,
}

/// A planned query: its output schema and the batches as they come.
pub struct QueryOutput {
    pub schema: SchemaRef,
    pub stream: BatchStream,
}

const STORE_URL: &str = "opsboard://tenant";

impl QueryEngine {
    /// An engine that does not spill (CLI, tools); the server uses [`QueryEngine::with_spill_dir`].
    pub fn new(config: QueryConfig) -> Self {
        Self::build(config, None)
    }

    /// An engine whose sorts and joins may spill, together at most `query.spill_bytes`, to
    /// `dir` (emptied now: what a killed process left there is nobody's).
    pub fn with_spill_dir(config: QueryConfig, dir: std::path::PathBuf) -> Self {
        Self::build(config, Some(dir))
    }

    fn build(config: QueryConfig, spill_dir: Option<std::path::PathBuf>) -> Self {
        Self {
            budget: budget::Budget::new(&config, spill_dir),
            executor: executor::Executor::new(config.threads),
            caps: caps::Caps::new(&config),
            metadata: metadata::MetadataCache::new(config.metadata_cache_bytes),
            config,
            files_scanned: Arc::default(),
            last_rows_reads: Arc::default(),
            rollup_reads: Arc::default(),
            engine_options: SessionConfig::from_env().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "ignoring DATAFUSION_* settings that do not parse");
                SessionConfig::new()
            }),
        }
    }

    /// Bytes the running queries hold of `query.memory_budget_bytes`.
    pub fn memory_in_use(&self) -> usize {
        self.budget.memory_in_use()
    }

    /// Parquet files scans have planned to open so far.
    pub fn parquet_files_scanned(&self) -> u64 {
        self.files_scanned.load(Ordering::Relaxed)
    }

    /// Reads answered by the storage layer's newest rows (`last_rows`) instead of a scan.
    pub fn last_rows_reads(&self) -> u64 {
        self.last_rows_reads.load(Ordering::Relaxed)
    }

    /// Aggregates answered from a table's rollup (with raw rows for what it does not hold).
    pub fn rollup_reads(&self) -> u64 {
        self.rollup_reads.load(Ordering::Relaxed)
    }

    /// Bytes of Parquet metadata cached, and the cache's share of the memory budget.
    pub fn metadata_cache_memory(&self) -> (usize, usize) {
        (self.metadata.used(), self.metadata.limit())
    }

    /// Parquet files whose metadata is cached, and how many of them with their page index.
    pub fn metadata_cache_files(&self) -> (usize, usize) {
        self.metadata.files()
    }

    /// This engine with DataFusion settings given here instead of read from `DATAFUSION_*`
    /// variables (embedding and tests: the environment is shared by the whole process).
    pub fn with_engine_settings(mut self, settings: SessionConfig) -> Self {
        self.engine_options = settings;
        self
    }

    /// A SessionContext that can see exactly this tenant's tables.
    pub fn context(&self, tenant: &Arc<TenantStore>) -> Result<SessionContext, QueryError> {
        let url = ObjectStoreUrl::parse(STORE_URL).map_err(|e| self.classify(e))?;
        let mut runtime =
            RuntimeEnvBuilder::new()
                .with_memory_pool(self.budget.query_pool())
                .with_cache_manager(CacheManagerConfig::default().with_file_metadata_cache(Some(
                    Arc::new(self.metadata.for_tenant(&tenant.name)),
                )))
                .build()
                .map_err(|e| self.classify(e))?;
        // One disk manager for all queries, so `query.spill_bytes` bounds them together.
        runtime.disk_manager = self.budget.disk();
        let runtime = Arc::new(runtime);
        runtime.register_object_store(url.as_ref(), tenant.object_store());
        // A sort keeps this much aside to merge what it spilled: DataFusion's 10 MiB, or an
        // eighth of a smaller query limit, so that small limits spill instead of failing.
        let merge_reserve = (10 << 20).min(self.config.memory_limit_bytes / 8);
        // DataFusion's own `DATAFUSION_*` variables tune the engine (for example
        // `DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS=true`); the settings below always hold.
        let config = self
            .engine_options
            .clone()
            .with_information_schema(true)
            .with_default_catalog_and_schema("datafusion", "public")
            .with_sort_spill_reservation_bytes(merge_reserve);
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features();
        if self.config.rollups {
            state = state.with_optimizer_rule(Arc::new(rollup_rule::RollupRewrite {
                reads: self.rollup_reads.clone(),
            }));
        }
        let state = state.build();
        let ctx = SessionContext::new_with_state(state);
        let catalog = MemoryCatalogProvider::new();
        catalog
            .register_schema(
                "public",
                Arc::new(TenantSchema::new(
                    tenant.clone(),
                    url,
                    self.files_scanned.clone(),
                )),
            )
            .map_err(|e| self.classify(e))?;
        ctx.register_catalog("datafusion", Arc::new(catalog));
        self.caps.install(&ctx);
        ctx.register_udtf(
            last::NAME,
            Arc::new(last::LastRowsFunction {
                tenant: tenant.clone(),
                reads: self.last_rows_reads.clone(),
            }),
        );
        Ok(ctx)
    }

    /// Plans and starts `sql` (read-only) for `tenant`.
    pub async fn execute(
        &self,
        tenant: &Arc<TenantStore>,
        sql: &str,
    ) -> Result<QueryOutput, QueryError> {
        self.execute_with_params(tenant, sql, &Params::new()).await
    }

    /// Plans and starts `sql` with `$name` placeholders bound to `params` (see [`bind`]).
    pub async fn execute_with_params(
        &self,
        tenant: &Arc<TenantStore>,
        sql: &str,
        params: &Params,
    ) -> Result<QueryOutput, QueryError> {
        check_read_only(sql)?;
        let mut statement = DFParser::parse_sql(sql)
            .map_err(|e| QueryError::Parse {
                message: e.to_string(),
            })?
            .pop_front()
            .ok_or_else(|| QueryError::Parse {
                message: "empty statement".into(),
            })?;
        let mut params = params.clone();
        bind::expand_lists(&mut statement, &mut params)?;
        bind::type_placeholders(&mut statement, &params)?;
        let admission = self.budget.admit(&tenant.name).await?;
        let (usage, started) = (tenant.usage().clone(), std::time::Instant::now());
        let timeout = self.config.timeout.0;
        let deadline = Instant::now() + timeout;
        let ctx = self.context(tenant)?;
        let limit = self.config.memory_limit_bytes;
        let classify: Arc<dyn Fn(DataFusionError) -> QueryError + Send + Sync> =
            Arc::new(move |e| classify_with_limit(e, limit));
        let plan_classify = classify.clone();
        let params = params.clone();
        let start = async move {
            let options = SQLOptions::new()
                .with_allow_ddl(false)
                .with_allow_dml(false)
                .with_allow_statements(false);
            let planned = async {
                let plan = ctx.state().statement_to_plan(statement).await?;
                options.verify_plan(&plan)?;
                let plan = if params.is_empty() {
                    plan
                } else {
                    plan.with_param_values(ParamValues::from(params))?
                };
                let frame = ctx.execute_logical_plan(plan).await?;
                let physical = frame.create_physical_plan().await?;
                let stream =
                    datafusion::physical_plan::execute_stream(physical.clone(), ctx.task_ctx())?;
                Ok(metered::metered(stream, physical, usage, started))
            };
            planned.await.map_err(|e| plan_classify(e))
        };
        let (schema, stream) = self
            .executor
            .run(start, deadline, timeout, classify, admission)
            .await?;
        Ok(QueryOutput { schema, stream })
    }

    /// Runs `sql` to completion (CLI, tests).
    pub async fn collect(
        &self,
        tenant: &Arc<TenantStore>,
        sql: &str,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        self.collect_with_params(tenant, sql, &Params::new()).await
    }

    /// Runs `sql` with bound parameters to completion (panels). No rows is one empty batch,
    /// so the result still names its columns.
    pub async fn collect_with_params(
        &self,
        tenant: &Arc<TenantStore>,
        sql: &str,
        params: &Params,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let output = self.execute_with_params(tenant, sql, params).await?;
        let batches: Vec<RecordBatch> = output
            .stream
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        if batches.is_empty() {
            return Ok(vec![RecordBatch::new_empty(output.schema)]);
        }
        Ok(batches)
    }

    fn classify(&self, e: DataFusionError) -> QueryError {
        classify_with_limit(e, self.config.memory_limit_bytes)
    }
}

fn classify_with_limit(e: DataFusionError, limit_bytes: usize) -> QueryError {
    let root = e.find_root();
    let message = root.to_string();
    match root {
        DataFusionError::ResourcesExhausted(_) => QueryError::MemoryLimit {
            limit_bytes,
            message,
        },
        DataFusionError::SQL(..) => QueryError::Parse { message },
        DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_) => QueryError::Plan { message },
        DataFusionError::ObjectStore(_)
        | DataFusionError::IoError(_)
        | DataFusionError::ParquetError(_) => QueryError::Storage { message },
        DataFusionError::External(inner)
            if inner
                .downcast_ref::<crate::storage::StorageError>()
                .is_some() =>
        {
            QueryError::Storage { message }
        }
        _ => QueryError::Execution { message },
    }
}
