//! The configuration the server runs with — the one owner of each tenant's settings. It holds
//! the set of tenants (one rule: [`tenant_folders`]), and on every reload it pushes each
//! tenant's table settings from tenant.yaml (declared schemas, retention) to storage, then
//! validates the dashboards and panels against the tables storage now has. A reload that
//! validates replaces the tenant's dashboards configuration and bumps its generation; one that
//! does not keeps the last good one and records the problems for
//! `/api/v1/tenants/{t}/config/errors`. Storage never reads YAML itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::RwLock;

use crate::check::load_tenant;
use crate::config::{
    AggregationRules, ConfigDirs, Functions, KnownTables, Problem, TenantConfig, TenantPanels,
    has_dashboards, tenant_folders,
};
use crate::panels::TenantConfigs;
use crate::storage::{Store, TenantStore};

#[derive(Default)]
struct Slot {
    good: Option<Arc<TenantPanels>>,
    generation: u64,
    problems: Vec<Problem>,
    checked_at: Option<SystemTime>,
}

/// What a reload did to one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    Loaded,
    Rejected(usize),
    /// A folder with no dashboards configuration: it stores data and has no pages.
    DataOnly,
}

pub struct LiveConfigs {
    dirs: ConfigDirs,
    aggregation: AggregationRules,
    image_functions: Vec<&'static str>,
    data_functions: Vec<&'static str>,
    slots: RwLock<BTreeMap<String, Slot>>,
}

impl LiveConfigs {
    /// `image_functions` and `data_functions`: the names custom panels may use (the panel
    /// engine's registry).
    pub fn new(
        dirs: ConfigDirs,
        aggregation: AggregationRules,
        image_functions: Vec<&'static str>,
        data_functions: Vec<&'static str>,
    ) -> Self {
        Self {
            dirs,
            aggregation,
            image_functions,
            data_functions,
            slots: RwLock::new(BTreeMap::new()),
        }
    }

    pub fn dirs(&self) -> &ConfigDirs {
        &self.dirs
    }

    /// Every tenant, by the one rule.
    pub fn tenants(&self) -> Vec<String> {
        tenant_folders(&self.dirs.tenants_dir)
    }

    /// Tenants with dashboards configuration (good or rejected), by name.
    pub fn dashboard_tenants(&self) -> Vec<String> {
        self.slots.read().keys().cloned().collect()
    }

    /// The tenant's current good configuration and its generation.
    pub fn current(&self, tenant: &str) -> Option<(Arc<TenantPanels>, u64)> {
        let slots = self.slots.read();
        let slot = slots.get(tenant)?;
        Some((slot.good.clone()?, slot.generation))
    }

    /// Problems of the tenant's newest configuration on disk (empty when it loaded).
    pub fn problems(&self, tenant: &str) -> Option<(Vec<Problem>, Option<SystemTime>)> {
        let slots = self.slots.read();
        slots
            .get(tenant)
            .map(|s| (s.problems.clone(), s.checked_at))
    }

    /// Reloads every tenant: settings to storage first, then dashboards and panels.
    pub async fn reload_all(&self, store: &Store) -> BTreeMap<String, ReloadOutcome> {
        let names = self.tenants();
        let mut outcomes = BTreeMap::new();
        for name in &names {
            let outcome = match store.tenant(name).await {
                Ok(tenant) => self.reload(&tenant),
                Err(e) => {
                    tracing::error!(tenant = %name, error = %e, "cannot open the tenant's store");
                    continue;
                }
            };
            outcomes.insert(name.clone(), outcome);
        }
        self.slots.write().retain(|name, _| names.contains(name));
        outcomes
    }

    /// Reloads one tenant whose store is open.
    pub fn reload(&self, tenant: &TenantStore) -> ReloadOutcome {
        let name = tenant.name.as_str();
        let dir = self.dirs.tenants_dir.join(name);
        // tenant.yaml is checked on its own: its settings reach storage even while a dashboard
        // is broken, and a broken tenant.yaml leaves the last good settings in place.
        if let Ok(settings) = TenantConfig::load(&dir) {
            tenant.apply_settings(settings);
        }
        if !has_dashboards(&dir) {
            self.slots.write().remove(name);
            return ReloadOutcome::DataOnly;
        }
        let functions = Functions {
            image: &self.image_functions,
            data: &self.data_functions,
        };
        let live = known_tables_of(tenant);
        let result = load_tenant(&self.dirs, name, &self.aggregation, &live, functions);
        self.store_result(name, result)
    }

    fn store_result(
        &self,
        tenant: &str,
        result: Result<TenantPanels, Vec<Problem>>,
    ) -> ReloadOutcome {
        let mut slots = self.slots.write();
        let slot = slots.entry(tenant.to_string()).or_default();
        slot.checked_at = Some(SystemTime::now());
        match result {
            Ok(config) => {
                slot.good = Some(Arc::new(config));
                slot.generation += 1;
                slot.problems.clear();
                tracing::info!(tenant, generation = slot.generation, "configuration loaded");
                ReloadOutcome::Loaded
            }
            Err(problems) => {
                for p in &problems {
                    tracing::warn!(tenant, "{p}");
                }
                tracing::warn!(
                    tenant,
                    problems = problems.len(),
                    kept_previous = slot.good.is_some(),
                    "configuration rejected"
                );
                let n = problems.len();
                slot.problems = problems;
                ReloadOutcome::Rejected(n)
            }
        }
    }
}

/// Pushes every tenant's tenant.yaml settings to storage without loading dashboards: what the
/// command-line tools need before they write or read beside (or without) a server.
pub async fn apply_tenant_settings(store: &Store) -> Result<(), crate::storage::StorageError> {
    for name in tenant_folders(store.tenants_dir()) {
        let settings = TenantConfig::load(&store.tenants_dir().join(&name))?;
        store.tenant(&name).await?.apply_settings(settings);
    }
    Ok(())
}

impl TenantConfigs for LiveConfigs {
    fn current(&self, tenant: &str) -> Option<(Arc<TenantPanels>, u64)> {
        LiveConfigs::current(self, tenant)
    }
}

/// The tables a running tenant has, for validation.
pub fn known_tables_of(store: &TenantStore) -> KnownTables {
    let mut tables = KnownTables::new();
    for table in store.tables() {
        let schema = table.schema();
        let columns = schema
            .columns()
            .iter()
            .map(|c| (c.name.clone(), c.kind))
            .collect();
        tables.insert(table.name.clone(), columns);
    }
    tables
}
