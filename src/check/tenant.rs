//! Loads one tenant's configuration — tenant.yaml, its dashboards, its panels and the shared
//! panels its dashboards use, its alert rules — into a [`TenantPanels`], or returns every
//! problem found. The live configuration keeps the last good one when a reload fails.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::alerts::{AlertContext, load_alerts};
use super::panel::{Context, check_panel};
use super::sql::plan_against;
use super::template::check_template;
use crate::config::{
    AggregationRules, ConfigDirs, DashboardFile, Functions, KnownTables, LoadedDashboard,
    LoadedPanel, Locator, PanelFile, Problem, Report, Step, TenantConfig, TenantPanels, Variable,
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
    let own = parse_panels(&dir.join("panels"), false, &mut problems);
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
        check_variable_queries(&parsed.dashboard.variables, &tables, &mut report);
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

    // Panels are checked knowing the variables every dashboard placing them declares.
    let declared = declared_variables(&dashboards);
    let boards: BTreeMap<String, Vec<String>> = dashboards
        .iter()
        .map(|(name, d)| {
            let vars = d.config.variables.iter().map(|v| v.name.clone()).collect();
            (name.clone(), vars)
        })
        .collect();
    let no_variables = vec![];
    let ctx = |id: &str| Context {
        tenant,
        tables: Some(&tables),
        image_functions: functions.image,
        data_functions: functions.data,
        variables: declared.get(id).unwrap_or(&no_variables),
        dashboards: Some(&boards),
    };
    let mut panels: BTreeMap<String, Arc<LoadedPanel>> = BTreeMap::new();
    for id in used_shared.keys() {
        if let Some(mut parsed) = shared.remove(id) {
            check_parsed(&mut parsed, &ctx(id), &mut problems);
            panels.insert(id.clone(), Arc::new(parsed.panel));
        }
    }
    for (id, mut parsed) in own {
        check_parsed(&mut parsed, &ctx(&id), &mut problems);
        panels.insert(id, Arc::new(parsed.panel));
    }
    let panel_ids: Vec<&str> = panels.keys().map(String::as_str).collect();
    let alert_context = AlertContext {
        tables: &tables,
        declared: &settings.tables,
        panel_ids: &panel_ids,
    };
    let alerts = load_alerts(&dir.join("alerts"), &alert_context, &mut problems);
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
        variables: &[],
        dashboards: None,
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

/// For each panel a dashboard places, the variables every dashboard placing it declares.
fn declared_variables(
    dashboards: &BTreeMap<String, LoadedDashboard>,
) -> BTreeMap<String, Vec<String>> {
    let mut declared: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for board in dashboards.values() {
        let names: Vec<String> = board
            .config
            .variables
            .iter()
            .map(|v| v.name.clone())
            .collect();
        for entry in &board.config.panels {
            declared
                .entry(entry.panel_id().to_string())
                .and_modify(|have| have.retain(|n| names.contains(n)))
                .or_insert_with(|| names.clone());
        }
    }
    declared
}

/// A variable's `query:` is read-only SQL without placeholders, planned against the tables and
/// returning at least one column (its first lists the options).
fn check_variable_queries(variables: &[Variable], tables: &KnownTables, r: &mut Report<'_>) {
    for (i, v) in variables.iter().enumerate() {
        let Some(sql) = &v.query else { continue };
        let path = [
            Step::from("dashboard"),
            "variables".into(),
            i.into(),
            "query".into(),
        ];
        if let Err(e) = crate::query::check_read_only(sql) {
            r.at(&path, format!("variable `{}`: {e}", v.name));
            continue;
        }
        if sql.contains('$') {
            r.at(
                &path,
                format!("variable `{}`: its query takes no parameters", v.name),
            );
            continue;
        }
        if let Err(message) = plan_against(sql, tables, &[]) {
            r.at(&path, format!("variable `{}`: {message}", v.name));
        }
    }
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
            columns.insert(field.clone(), ColumnKind::Field(kind.stored()));
        }
    }
    tables
}
