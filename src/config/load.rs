//! Loads one tenant's panel configuration — tenant.yaml, its dashboards, its panels and the
//! shared panels its dashboards use — into a [`TenantPanels`], or returns every problem found.
//! The server keeps the last good `TenantPanels` per tenant when a reload fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::dashboard::{DashboardConfig, DashboardFile, Placement, check_dashboard};
use super::locate::{Locator, Step};
use super::panel::{PanelConfig, PanelFile};
use super::validate::{
    ColumnType, Context, KnownTables, Problem, Report, check_panel, check_template,
};
use super::{
    AggregationRules, FieldTypeName, HumanDuration, TenantConfig, parse_yaml_all, read_file,
};

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

struct ParsedPanel {
    panel: LoadedPanel,
    locator: Locator,
}

/// Reads and checks everything for `tenant`. `live` adds tables the store knows at runtime.
pub fn load_tenant(
    dirs: &ConfigDirs,
    tenant: &str,
    server_aggregation: &AggregationRules,
    live: &KnownTables,
    functions: Functions<'_>,
) -> Result<TenantPanels, Vec<Problem>> {
    let dir = dirs.tenants_dir.join(tenant);
    let mut problems = vec![];
    let settings = match TenantConfig::load(&dir) {
        Ok(s) => s,
        Err(e) => return Err(vec![e.into()]),
    };
    let timezone = match settings.timezone.as_deref() {
        None => chrono_tz::UTC,
        Some(name) => match name.parse::<chrono_tz::Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                let file = dir.join("tenant.yaml");
                let text = read_file(&file).unwrap_or_default();
                let (line, column) = Locator::new(&text).locate(&[Step::from("timezone")]);
                problems.push(Problem {
                    file,
                    line,
                    column,
                    message: format!(
                        "unknown timezone `{name}` (use an IANA name such as Europe/Paris)"
                    ),
                });
                chrono_tz::UTC
            }
        },
    };
    let tables = known_tables(&settings, live);
    let ctx = Context {
        tenant,
        tables: Some(&tables),
        image_functions: functions.image,
        data_functions: functions.data,
    };

    let mut own = parse_panels(&dir.join("panels"), false, &mut problems);
    for parsed in own.values_mut() {
        check_parsed(parsed, &ctx, &mut problems);
    }
    let mut shared = parse_panels(&dirs.panels_dir, true, &mut problems);

    let mut dashboards = BTreeMap::new();
    let dashboards_dir = dir.join("dashboards");
    let files = yaml_files(&dashboards_dir);
    if !files.iter().any(|(stem, _)| stem == "default") {
        problems.push(Problem {
            file: dashboards_dir.join("default.yaml"),
            line: 1,
            column: 1,
            message: "missing: every tenant needs a default dashboard".into(),
        });
    }
    let mut used_shared = BTreeMap::new();
    for (name, file) in files {
        let text = match read_file(&file) {
            Ok(t) => t,
            Err(e) => {
                problems.push(e.into());
                continue;
            }
        };
        let parsed: DashboardFile = match parse_yaml_all(&file, &text) {
            Ok(d) => d,
            Err(errors) => {
                problems.extend(errors.into_iter().map(Problem::from));
                continue;
            }
        };
        let locator = Locator::new(&text);
        let mut report = Report {
            file: &file,
            locator: &locator,
            problems: vec![],
        };
        let kind_of = |id: &str| {
            own.get(id)
                .or_else(|| shared.get(id))
                .map(|p| p.panel.config.kind)
        };
        let hint = |id: &str| {
            format!(
                "panel `{id}` not found: no {id}.yaml in the tenant's panels/ or the shared panels/"
            )
        };
        let placements = check_dashboard(&parsed.dashboard, &kind_of, &hint, &mut report);
        for entry in &parsed.dashboard.panels {
            let id = entry.panel_id();
            if !own.contains_key(id) && shared.contains_key(id) {
                used_shared.insert(id.to_string(), ());
            }
        }
        problems.extend(report.problems);
        dashboards.insert(
            name.clone(),
            LoadedDashboard {
                name,
                config: parsed.dashboard,
                placements,
            },
        );
    }

    let mut panels: BTreeMap<String, Arc<LoadedPanel>> = BTreeMap::new();
    for id in used_shared.keys() {
        if let Some(mut parsed) = shared.remove(id) {
            check_parsed(&mut parsed, &ctx, &mut problems);
            panels.insert(id.clone(), Arc::new(parsed.panel));
        }
    }
    for (id, parsed) in own {
        panels.insert(id, Arc::new(parsed.panel));
    }
    let panel_ids: Vec<&str> = panels.keys().map(String::as_str).collect();
    let alerts = super::load_alerts(&dir.join("alerts"), &tables, &panel_ids, &mut problems);
    if !problems.is_empty() {
        problems.sort();
        problems.dedup();
        return Err(problems);
    }
    let aggregation = settings
        .aggregation
        .clone()
        .unwrap_or_else(|| server_aggregation.clone());
    Ok(TenantPanels {
        tenant: tenant.to_string(),
        settings,
        timezone,
        aggregation,
        dashboards,
        panels,
        alerts,
    })
}

/// Structural checks for shared panels (tables are checked per tenant that uses them).
pub fn check_shared_panels(dirs: &ConfigDirs, functions: Functions<'_>) -> Vec<Problem> {
    let mut problems = vec![];
    let mut shared = parse_panels(&dirs.panels_dir, true, &mut problems);
    let ctx = Context {
        tenant: "",
        tables: None,
        image_functions: functions.image,
        data_functions: functions.data,
    };
    for parsed in shared.values_mut() {
        check_parsed(parsed, &ctx, &mut problems);
    }
    problems
}

fn check_parsed(parsed: &mut ParsedPanel, ctx: &Context<'_>, problems: &mut Vec<Problem>) {
    let mut report = Report {
        file: &parsed.panel.file,
        locator: &parsed.locator,
        problems: vec![],
    };
    check_panel(&parsed.panel.config, ctx, &mut report);
    if let Some(template) = &parsed.panel.config.template {
        let key = [Step::from("panel"), Step::from("template")];
        check_template(
            template,
            parsed.panel.template_first_line,
            &key,
            &mut report,
        );
    }
    problems.extend(report.problems);
}

fn parse_panels(
    dir: &Path,
    shared: bool,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, ParsedPanel> {
    let mut out = BTreeMap::new();
    for (id, file) in yaml_files(dir) {
        let text = match read_file(&file) {
            Ok(t) => t,
            Err(e) => {
                problems.push(e.into());
                continue;
            }
        };
        match parse_yaml_all::<PanelFile>(&file, &text) {
            Err(errors) => problems.extend(errors.into_iter().map(Problem::from)),
            Ok(parsed) => {
                let locator = Locator::new(&text);
                let template_first_line = block_first_line(
                    &text,
                    &locator,
                    &[Step::from("panel"), Step::from("template")],
                );
                out.insert(
                    id.clone(),
                    ParsedPanel {
                        panel: LoadedPanel {
                            id,
                            file,
                            config: parsed.panel,
                            template_first_line,
                            shared,
                        },
                        locator,
                    },
                );
            }
        }
    }
    out
}

/// A block scalar (`template: |`) starts on the next line; an inline one on the key's line.
pub(super) fn block_first_line(text: &str, locator: &Locator, key: &[Step]) -> usize {
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

/// Tenant folders under `tenants_dir` (those holding a tenant.yaml or dashboards/).
pub fn tenant_names(tenants_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(tenants_dir) else {
        return vec![];
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter(|e| e.path().join("tenant.yaml").exists() || e.path().join("dashboards").is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Declared tables (tenant.yaml) merged with live ones; every table has `time`.
fn known_tables(settings: &TenantConfig, live: &KnownTables) -> KnownTables {
    let mut tables = live.clone();
    for (name, table) in &settings.tables {
        let columns = tables.entry(name.clone()).or_default();
        columns.insert(crate::storage::TIME_COLUMN.to_string(), ColumnType::Time);
        for tag in &table.tags {
            columns.insert(tag.clone(), ColumnType::Tag);
        }
        for (field, kind) in &table.fields {
            columns.insert(
                field.clone(),
                match kind {
                    FieldTypeName::Float => ColumnType::Float,
                    FieldTypeName::Integer => ColumnType::Integer,
                    FieldTypeName::Uinteger => ColumnType::UInteger,
                    FieldTypeName::Boolean => ColumnType::Boolean,
                    FieldTypeName::String => ColumnType::String,
                },
            );
        }
    }
    tables
}
