//! A tenant's configuration as loaded and checked — its dashboards, its panels and the shared
//! panels its dashboards use, its alerts — and where the files are: the folders, the YAML
//! files in one, and the one rule for what a tenant folder is. The loading with its checks is
//! `check::load_tenant`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::dashboard::{DashboardConfig, Placement};
use super::locate::{Locator, Step};
use super::panel::PanelConfig;
use super::{AggregationRules, HumanDuration, TenantConfig};

/// Where configuration lives: `tenants/` and the shared `panels/`.
#[derive(Debug, Clone)]
pub struct ConfigDirs {
    pub tenants_dir: PathBuf,
    pub panels_dir: PathBuf,
}

/// Registered Rust functions panels may name (the panel engine supplies the lists).
#[derive(Debug, Clone, Copy)]
pub struct Functions<'a> {
    pub image: &'a [&'a str],
    pub data: &'a [&'a str],
}

#[derive(Debug)]
pub struct LoadedPanel {
    pub id: String,
    pub file: PathBuf,
    pub config: PanelConfig,
    /// Line of the template's first line in `file` (template errors are reported there).
    pub template_first_line: usize,
    pub shared: bool,
}

#[derive(Debug)]
pub struct LoadedDashboard {
    /// File stem: the name in URLs.
    pub name: String,
    pub config: DashboardConfig,
    pub placements: Vec<Placement>,
}

/// One placed panel of a dashboard, resolved.
#[derive(Debug, Clone)]
pub struct DashboardEntry {
    /// The entry's id in the dashboard.
    pub id: String,
    pub panel: Arc<LoadedPanel>,
    pub placement: Placement,
    /// The panel's refresh interval, else the dashboard's.
    pub refresh: Option<HumanDuration>,
}

impl LoadedDashboard {
    /// The dashboard's panels with their placements, in order.
    pub fn entries(&self, panels: &BTreeMap<String, Arc<LoadedPanel>>) -> Vec<DashboardEntry> {
        self.config
            .panels
            .iter()
            .zip(&self.placements)
            .filter_map(|(entry, placement)| {
                let panel = panels.get(entry.panel_id())?.clone();
                Some(DashboardEntry {
                    id: entry.id.clone(),
                    refresh: panel
                        .config
                        .refresh_interval
                        .or(self.config.refresh_interval),
                    panel,
                    placement: *placement,
                })
            })
            .collect()
    }
}

/// A tenant's validated panel configuration.
#[derive(Debug)]
pub struct TenantPanels {
    pub tenant: String,
    pub settings: TenantConfig,
    pub timezone: chrono_tz::Tz,
    /// The tenant's aggregation rules (its own, else the server's).
    pub aggregation: AggregationRules,
    pub dashboards: BTreeMap<String, LoadedDashboard>,
    /// Tenant panels plus the shared panels its dashboards use, by id.
    pub panels: BTreeMap<String, Arc<LoadedPanel>>,
    /// Alert rules, channels and routes from `alerts/*.yaml`.
    pub alerts: super::TenantAlerts,
}

/// A block scalar (`template: |`) starts on the next line; an inline one on the key's line.
pub fn block_first_line(text: &str, locator: &Locator, key: &[Step]) -> usize {
    let (line, _) = locator.locate(key);
    let block = text
        .lines()
        .nth(line.saturating_sub(1))
        .and_then(|l| l.split_once(':'))
        .is_some_and(|(_, v)| v.trim_start().starts_with(['|', '>']));
    if block { line + 1 } else { line }
}

/// `*.yaml` / `*.yml` files directly in `dir`, by stem, sorted.
pub fn yaml_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p)))
        .collect();
    files.sort();
    files
}

/// The one rule for what a tenant is: a folder under `dir` whose name is a valid tenant name.
/// Storage, access control, the live configuration and the pages all ask this.
pub fn tenant_folders(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| crate::schema::is_valid_tenant_name(name))
        .collect();
    names.sort();
    names
}

/// Whether a tenant folder holds dashboards configuration (a tenant without it only stores
/// data and has no pages).
pub fn has_dashboards(tenant_dir: &Path) -> bool {
    tenant_dir.join("tenant.yaml").exists() || tenant_dir.join("dashboards").is_dir()
}
