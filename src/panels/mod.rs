//! The panel engine: a panel id and request parameters in, that panel type's JSON out. It picks
//! the time bucket (seed 003's rules, overridable per tenant and panel), builds the query with
//! every request value bound as a parameter, shapes the result per panel type (one file each)
//! and caches the answer for the panel's refresh interval.

mod alerts;
mod cache;
mod custom;
mod export;
mod health;
mod kpi;
mod live;
mod request;
mod sqlgen;
mod table;
mod time_range;
mod timeseries;
pub mod values;

pub use crate::config::{AggregationRule, AggregationRules, Bucket};
pub use cache::{CacheStats, PanelCache};
pub use custom::{DataFunction, ImageFunction, Registry};
pub use live::{LiveConfigs, ReloadOutcome, known_tables_of};
pub use request::PanelRequest;
pub use time_range::{RequestedRange, parse_instant};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::config::{LoadedPanel, PanelType, TenantPanels};
use crate::query::{Params, QueryEngine, QueryError, QueryOutput};
use crate::storage::{StorageError, Store, TenantStore};

/// A request parameter the panel engine cannot use; always names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{param}`: {message}")]
pub struct ParamError {
    pub param: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PanelError {
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error("tenant `{0}` has no dashboards configured")]
    NoConfig(String),
    #[error("no panel `{panel}` in tenant `{tenant}`")]
    UnknownPanel { tenant: String, panel: String },
    #[error("no dashboard `{dashboard}` in tenant `{tenant}`")]
    UnknownDashboard { tenant: String, dashboard: String },
    #[error("panel `{panel}`: {source}")]
    Query {
        panel: String,
        #[source]
        source: QueryError,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The panel's query returned columns the panel type cannot use (a `sql:` panel's fault).
    #[error("panel `{panel}`: {message}")]
    Shape { panel: String, message: String },
    #[error("panel `{panel}` template error at {file}:{line}: {message}")]
    Template {
        panel: String,
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("panel `{panel}`: {message}")]
    Function { panel: String, message: String },
    #[error("panel `{panel}` is a {kind} panel; it has no rows to export")]
    NotExportable { panel: String, kind: &'static str },
}

/// One panel's answer, ready to send (and to cache).
#[derive(Debug, Clone)]
pub struct PanelData {
    pub json: Bytes,
    /// custom_image panels: the image itself.
    pub image: Option<(String, Bytes)>,
}

/// Everything a panel type needs to run one request.
pub struct Run<'a> {
    pub engine: &'a QueryEngine,
    pub store: &'a Arc<TenantStore>,
    pub tenant: &'a TenantPanels,
    pub panel: &'a LoadedPanel,
    pub request: &'a PanelRequest,
    pub range: RequestedRange,
    pub now_ns: i64,
    pub raw_limit: usize,
}

impl Run<'_> {
    /// Runs `sql` with `params`; errors name the panel.
    pub async fn rows(&self, sql: &str, params: &Params) -> Result<Vec<RecordBatch>, PanelError> {
        self.engine
            .collect_with_params(self.store, sql, params)
            .await
            .map_err(|source| PanelError::Query {
                panel: self.panel.id.clone(),
                source,
            })
    }

    pub fn shape_error(&self, message: impl Into<String>) -> PanelError {
        PanelError::Shape {
            panel: self.panel.id.clone(),
            message: message.into(),
        }
    }

    /// The fields every panel answer starts with.
    pub fn header(&self) -> serde_json::Map<String, Value> {
        let config = &self.panel.config;
        let mut map = serde_json::Map::new();
        map.insert("panel".into(), json!(self.panel.id));
        map.insert("type".into(), json!(config.kind.name()));
        map.insert("title".into(), json!(config.title));
        map.insert("description".into(), json!(config.description));
        map.insert(
            "range".into(),
            json!({
                "from": values::rfc3339(self.range.from_ns),
                "to": values::rfc3339(self.range.to_ns),
            }),
        );
        map
    }
}

/// Runs panels for the HTTP layer (and benches): config lookup, cache, dispatch by type.
pub struct PanelEngine {
    store: Arc<Store>,
    engine: Arc<QueryEngine>,
    configs: Arc<LiveConfigs>,
    cache: PanelCache,
    registry: Registry,
    raw_limit: usize,
}

impl PanelEngine {
    pub fn new(
        store: Arc<Store>,
        engine: Arc<QueryEngine>,
        configs: Arc<LiveConfigs>,
        cache_max_bytes: u64,
        raw_limit: usize,
    ) -> Self {
        Self {
            store,
            engine,
            configs,
            cache: PanelCache::new(cache_max_bytes),
            registry: Registry::builtin(),
            raw_limit,
        }
    }

    pub fn configs(&self) -> &Arc<LiveConfigs> {
        &self.configs
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Drops a tenant's cached answers (its configuration changed).
    pub fn invalidate_tenant(&self, tenant: &str) {
        self.cache.invalidate_tenant(tenant);
    }

    /// The tenant's current configuration, or why there is none.
    pub fn tenant_config(&self, tenant: &str) -> Result<Arc<TenantPanels>, PanelError> {
        self.configs
            .current(tenant)
            .map(|(config, _)| config)
            .ok_or_else(|| PanelError::NoConfig(tenant.to_string()))
    }

    /// The tenant's store, its current configuration and generation, and the panel.
    async fn lookup(
        &self,
        tenant: &str,
        panel_id: &str,
    ) -> Result<(Arc<TenantStore>, Arc<TenantPanels>, u64, Arc<LoadedPanel>), PanelError> {
        let store = self.store.tenant(tenant).await?;
        let (config, generation) = self
            .configs
            .current(tenant)
            .ok_or_else(|| PanelError::NoConfig(tenant.to_string()))?;
        let panel =
            config
                .panels
                .get(panel_id)
                .cloned()
                .ok_or_else(|| PanelError::UnknownPanel {
                    tenant: tenant.to_string(),
                    panel: panel_id.to_string(),
                })?;
        Ok((store, config, generation, panel))
    }

    /// Everything one request of one panel needs, with its range resolved.
    fn prepare<'a>(
        &'a self,
        store: &'a Arc<TenantStore>,
        tenant: &'a TenantPanels,
        panel: &'a LoadedPanel,
        request: &'a PanelRequest,
        now_ns: i64,
    ) -> Result<Run<'a>, PanelError> {
        Ok(Run {
            engine: &self.engine,
            store,
            tenant,
            panel,
            request,
            range: request.range(now_ns)?,
            now_ns,
            raw_limit: self.raw_limit,
        })
    }

    /// One panel's data for `request`, from the cache when fresh.
    pub async fn data(
        &self,
        tenant: &str,
        panel_id: &str,
        request: &PanelRequest,
        now_ns: i64,
    ) -> Result<Arc<PanelData>, PanelError> {
        let (store, config, generation, panel) = self.lookup(tenant, panel_id).await?;
        let key = cache::Key {
            tenant: tenant.to_string(),
            generation,
            panel: panel_id.to_string(),
            params: request.cache_key(),
        };
        if let Some(hit) = self.cache.get(&key) {
            return Ok(hit);
        }
        let run = self.prepare(&store, &config, &panel, request, now_ns)?;
        let data = self.run(&run).await?;
        let data = Arc::new(data);
        let ttl = panel
            .config
            .refresh_interval
            .map(|d| d.0)
            .unwrap_or(DEFAULT_REFRESH);
        self.cache.insert(key, data.clone(), ttl);
        Ok(data)
    }

    /// Streams the rows behind a panel (never cached); returns them with the file stem
    /// `{tenant}-{panel}-{from}-{to}`.
    pub async fn export(
        &self,
        tenant: &str,
        panel_id: &str,
        request: &PanelRequest,
        now_ns: i64,
    ) -> Result<(QueryOutput, String), PanelError> {
        let (store, config, _, panel) = self.lookup(tenant, panel_id).await?;
        let run = self.prepare(&store, &config, &panel, request, now_ns)?;
        let output = export::stream(&run).await?;
        Ok((output, export::file_stem(&run)))
    }

    async fn run(&self, run: &Run<'_>) -> Result<PanelData, PanelError> {
        let mut image = None;
        let value = match run.panel.config.kind {
            PanelType::Timeseries => timeseries::run(run).await?,
            PanelType::Kpi => kpi::run(run).await?,
            PanelType::HealthStatus => health::run(run).await?,
            PanelType::Table => table::run(run).await?,
            PanelType::CustomImage => {
                let (value, content_type, bytes) = custom::run_image(&self.registry, run).await?;
                image = Some((content_type, bytes));
                value
            }
            PanelType::CustomTemplate => custom::run_template(&self.registry, run).await?,
            PanelType::Alerts => alerts::run(run).await?,
        };
        let json = serde_json::to_vec(&value).map_err(|e| run.shape_error(e.to_string()))?;
        Ok(PanelData {
            json: Bytes::from(json),
            image,
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// Cache lifetime of a panel that sets no `refresh_interval`.
const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
