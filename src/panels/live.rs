//! The configuration the server runs with, per tenant, and its reloading. A reload that
//! validates replaces the tenant's configuration and bumps its generation; one that does not
//! keeps the last good configuration and records the problems for
//! `/api/v1/tenants/{t}/config/errors`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::RwLock;

use crate::config::{
    AggregationRules, ColumnType, ConfigDirs, Functions, KnownTables, Problem, TenantPanels,
    load_tenant, tenant_names,
};
use crate::storage::{ColumnKind, FieldType, TenantStore};

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
}

pub struct LiveConfigs {
    dirs: ConfigDirs,
    aggregation: AggregationRules,
    image_functions: Vec<&'static str>,
    data_functions: Vec<&'static str>,
    slots: RwLock<BTreeMap<String, Slot>>,
}

impl LiveConfigs {
    pub fn new(
        dirs: ConfigDirs,
        aggregation: AggregationRules,
        registry: &super::Registry,
    ) -> Self {
        Self {
            dirs,
            aggregation,
            image_functions: registry.image_names(),
            data_functions: registry.data_names(),
            slots: RwLock::new(BTreeMap::new()),
        }
    }

    pub fn dirs(&self) -> &ConfigDirs {
        &self.dirs
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

    /// Reloads every tenant folder; `live` gives each tenant's tables as the store knows them.
    pub fn reload_all(
        &self,
        live: &dyn Fn(&str) -> KnownTables,
    ) -> BTreeMap<String, ReloadOutcome> {
        let names = tenant_names(&self.dirs.tenants_dir);
        let mut outcomes = BTreeMap::new();
        for name in &names {
            outcomes.insert(name.clone(), self.reload(name, &live(name)));
        }
        self.slots.write().retain(|name, _| names.contains(name));
        outcomes
    }

    pub fn reload(&self, tenant: &str, live: &KnownTables) -> ReloadOutcome {
        let functions = Functions {
            image: &self.image_functions,
            data: &self.data_functions,
        };
        let result = load_tenant(&self.dirs, tenant, &self.aggregation, live, functions);
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

/// The tables a running tenant has, for validation.
pub fn known_tables_of(store: &TenantStore) -> KnownTables {
    let mut tables = KnownTables::new();
    for table in store.tables() {
        let schema = table.schema();
        let columns = schema
            .columns()
            .iter()
            .map(|c| {
                let kind = match c.kind {
                    ColumnKind::Time => ColumnType::Time,
                    ColumnKind::Tag => ColumnType::Tag,
                    ColumnKind::Field(FieldType::Float) => ColumnType::Float,
                    ColumnKind::Field(FieldType::Integer) => ColumnType::Integer,
                    ColumnKind::Field(FieldType::UInteger) => ColumnType::UInteger,
                    ColumnKind::Field(FieldType::Boolean) => ColumnType::Boolean,
                    ColumnKind::Field(FieldType::String) => ColumnType::String,
                };
                (c.name.clone(), kind)
            })
            .collect();
        tables.insert(table.name.clone(), columns);
    }
    tables
}
