//! [`PanelEngine`]: what the HTTP layer, the alert evaluator and the benches call. It finds the
//! tenant's store and live configuration, answers from the cache when fresh, and otherwise
//! hands the request to the panel's kind.

use std::sync::Arc;
use std::time::Duration;

use super::cache::{self, CacheStats, PanelCache};
use super::flight::Flights;
use super::shared_scan::SharedScans;
use super::{PanelData, PanelError, PanelRequest, Registry, Run, export, kinds, variables};
use crate::config::{LoadedPanel, TenantPanels};
use crate::query::{QueryEngine, QueryOutput};
use crate::storage::{Store, TenantStore};
use crate::usage::Counter;

/// Where the engine finds each tenant's current configuration and its generation (the live
/// configuration, a floor up, implements it).
pub trait TenantConfigs: Send + Sync {
    fn current(&self, tenant: &str) -> Option<(Arc<TenantPanels>, u64)>;
}

/// Runs panels for the HTTP layer (and benches): config lookup, cache, dispatch by type.
pub struct PanelEngine {
    store: Arc<Store>,
    engine: Arc<QueryEngine>,
    configs: Arc<dyn TenantConfigs>,
    cache: PanelCache,
    /// Uncached answers being computed, by cache key and invalidation epoch.
    flights: Flights<(cache::Key, u64), Arc<PanelData>>,
    registry: Registry,
    scans: SharedScans,
    raw_limit: usize,
    max_series: usize,
    options: variables::OptionsCache,
}

impl PanelEngine {
    pub fn new(
        store: Arc<Store>,
        engine: Arc<QueryEngine>,
        configs: Arc<dyn TenantConfigs>,
        settings: &crate::config::PanelsConfig,
    ) -> Self {
        Self {
            store,
            engine,
            configs,
            cache: PanelCache::new(settings.cache_max_bytes),
            flights: Flights::default(),
            registry: Registry::builtin(),
            scans: SharedScans::new(settings.shared_scan_wait.0),
            raw_limit: settings.raw_limit,
            max_series: settings.max_series,
            options: Default::default(),
        }
    }

    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            shared: self.flights.shared(),
            scans_shared: self.scans.shared(),
            ..self.cache.stats()
        }
    }

    /// Drops a tenant's cached answers (its configuration changed).
    pub fn invalidate_tenant(&self, tenant: &str) {
        self.cache.invalidate_tenant(tenant);
    }

    /// Drops the tenant's cached answers of live panels (those that read alert changes).
    pub fn invalidate_live(&self, tenant: &str) {
        let Some((config, _)) = self.configs.current(tenant) else {
            return;
        };
        let live: Vec<String> = config
            .panels
            .values()
            .filter(|p| kinds::spec(&p.config.kind).is_some_and(|s| s.live))
            .map(|p| p.id.clone())
            .collect();
        if !live.is_empty() {
            self.cache.invalidate_panels(tenant, live);
        }
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
        let panel = panel_in(&config, tenant, panel_id)?;
        Ok((store, config, generation, panel))
    }

    fn scope<'a>(
        &'a self,
        store: &'a Arc<TenantStore>,
        config: &'a TenantPanels,
        generation: u64,
    ) -> variables::Scope<'a> {
        variables::Scope {
            engine: &self.engine,
            store,
            config,
            generation,
            options: &self.options,
        }
    }

    /// A dashboard's variables with their options and the values `request` picks.
    pub async fn variables(
        &self,
        tenant: &str,
        dashboard: &str,
        request: &PanelRequest,
    ) -> Result<Vec<variables::Picked>, PanelError> {
        let store = self.store.tenant(tenant).await?;
        let (config, generation) = self
            .configs
            .current(tenant)
            .ok_or_else(|| PanelError::NoConfig(tenant.to_string()))?;
        let board =
            config
                .dashboards
                .get(dashboard)
                .ok_or_else(|| PanelError::UnknownDashboard {
                    tenant: tenant.to_string(),
                    dashboard: dashboard.to_string(),
                })?;
        self.scope(&store, &config, generation)
            .all(board, request)
            .await
    }

    /// Everything one request of one panel needs, with its range and variables resolved.
    async fn prepare<'a>(
        &'a self,
        store: &'a Arc<TenantStore>,
        tenant: &'a TenantPanels,
        panel: &'a LoadedPanel,
        request: &'a PanelRequest,
        now_ns: i64,
        generation: u64,
    ) -> Result<Run<'a>, PanelError> {
        let vars = self
            .scope(store, tenant, generation)
            .bind(panel, request)
            .await?;
        Ok(Run {
            engine: &self.engine,
            store,
            tenant,
            panel,
            request,
            functions: &self.registry,
            range: request.range(now_ns)?,
            now_ns,
            raw_limit: self.raw_limit,
            max_series: self.max_series,
            vars,
            scans: &self.scans,
        })
    }

    /// One panel's data for `request`, from the cache when fresh.
    pub async fn data(
        self: &Arc<Self>,
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
            store.usage().add(Counter::PanelRenders, 1);
            if hit.refresh {
                let (engine, request) = (self.clone(), request.clone());
                tokio::spawn(async move {
                    let refreshed = engine
                        .compute(key, &store, &config, &panel, &request, now_ns)
                        .await;
                    if let Err(error) = refreshed {
                        // The entry stays until it expires; the next miss reports the error.
                        tracing::debug!(%error, "refreshing a panel answer ahead of its expiry failed");
                    }
                });
            }
            return Ok(hit.data);
        }
        let data = self
            .compute(key, &store, &config, &panel, request, now_ns)
            .await?;
        store.usage().add(Counter::PanelRenders, 1);
        Ok(data)
    }

    /// Computes the answer for `key` and caches it.
    async fn compute(
        &self,
        key: cache::Key,
        store: &Arc<TenantStore>,
        config: &TenantPanels,
        panel: &LoadedPanel,
        request: &PanelRequest,
        now_ns: i64,
    ) -> Result<Arc<PanelData>, PanelError> {
        let generation = key.generation;
        // Requests arriving while this answer is computed wait for it (a dashboard opened by
        // many at once, or all of them refreshing when its entry expires); an invalidation
        // meanwhile starts a new computation for those arriving after it.
        let epoch = self.cache.epoch(&key.tenant);
        let flight = (key.clone(), epoch);
        self.flights
            .run(flight, || async {
                let run = self
                    .prepare(store, config, panel, request, now_ns, generation)
                    .await?;
                let data = Arc::new(self.run(&run).await?);
                let ttl = panel
                    .config
                    .refresh_interval
                    .map(|d| d.0)
                    .unwrap_or(DEFAULT_REFRESH);
                self.cache.insert(key, data.clone(), ttl, epoch);
                Ok(data)
            })
            .await
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
        let (store, config, generation, panel) = self.lookup(tenant, panel_id).await?;
        let run = self
            .prepare(&store, &config, &panel, request, now_ns, generation)
            .await?;
        let output = export::stream(&run).await?;
        Ok((output, export::file_stem(&run)))
    }

    /// The row of table panel `panel_id` whose `key` columns read as given (see
    /// [`super::table::find_row`]); `None` when the panel does not show such a row.
    pub async fn find_row(
        &self,
        tenant: &str,
        panel_id: &str,
        request: &PanelRequest,
        key: &[(String, Option<String>)],
        now_ns: i64,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, PanelError> {
        let (store, config, generation, panel) = self.lookup(tenant, panel_id).await?;
        let run = self
            .prepare(&store, &config, &panel, request, now_ns, generation)
            .await?;
        if panel.config.kind.name() != "table" {
            return Err(run.shape_error("only a table panel has rows to act on"));
        }
        super::table::find_row(&run, key).await
    }

    /// The panel's configuration as currently loaded.
    pub fn panel(&self, tenant: &str, panel_id: &str) -> Result<Arc<LoadedPanel>, PanelError> {
        panel_in(&*self.tenant_config(tenant)?, tenant, panel_id)
    }

    async fn run(&self, run: &Run<'_>) -> Result<PanelData, PanelError> {
        let answer = run.kind()?.run(run).await?;
        Ok(PanelData::new(answer))
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

fn panel_in(
    config: &TenantPanels,
    tenant: &str,
    panel_id: &str,
) -> Result<Arc<LoadedPanel>, PanelError> {
    config
        .panels
        .get(panel_id)
        .cloned()
        .ok_or_else(|| PanelError::UnknownPanel {
            tenant: tenant.to_string(),
            panel: panel_id.to_string(),
        })
}

/// Cache lifetime of a panel that sets no `refresh_interval`.
const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
