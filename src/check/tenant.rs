//! Loads one tenant's configuration — tenant.yaml, its dashboards, its panels and the shared
//! panels its dashboards use, its alert rules — into a [`TenantPanels`], or returns every
//! problem found. The live configuration keeps the last good one when a reload fails.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::alerts::load_alerts;
use super::panel::{Context, check_panel, check_template};
use crate::config::{
    AggregationRules, ConfigDirs, DashboardFile, Functions, KnownTables, LoadedDashboard,
    LoadedPanel, Locator, PanelFile, Problem, Report, Step, TenantConfig, TenantPanels,
    block_first_line, check_dashboard, parse_yaml_all, read_file, yaml_files,
};
use crate::panels::kinds;
use crate::schema::{ColumnKind, TIME_COLUMN};

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
        // An unknown kind is reported on its panel; here it takes the smallest box.
        let size_of = |id: &str| {
            own.get(id)
                .or_else(|| shared.get(id))
                .map(|p| kinds::spec(&p.panel.config.kind).map_or((1, 1), |spec| spec.default_size))
        };
        let hint = |id: &str| {
            format!(
                "panel `{id}` not found: no {id}.yaml in the tenant's panels/ or the shared panels/"
            )
        };
        let placements = check_dashboard(&parsed.dashboard, &size_of, &hint, &mut report);
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
    let alerts = load_alerts(&dir.join("alerts"), &tables, &panel_ids, &mut problems);
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

/// Declared tables (tenant.yaml) merged with live ones; every table has `time`.
fn known_tables(settings: &TenantConfig, live: &KnownTables) -> KnownTables {
    let mut tables = live.clone();
    for (name, table) in &settings.tables {
        let columns = tables.entry(name.clone()).or_default();
        columns.insert(TIME_COLUMN.to_string(), ColumnKind::Time);
        for tag in &table.tags {
            columns.insert(tag.clone(), ColumnKind::Tag);
        }
        for (field, kind) in &table.fields {
            columns.insert(field.clone(), ColumnKind::Field(*kind));
        }
    }
    tables
}
