//! The validation pass after serde for one panel: every problem with its `file:line:column`.
//! Identifiers are checked against the tenant's tables (declared in tenant.yaml, or live when
//! the server runs), operator SQL and filter fragments against DataFusion's parser and
//! planner, templates against minijinja.

use std::collections::{BTreeMap, BTreeSet};

use super::sql::{check_sql, parse_order_by, parse_where, plan_against};
use crate::config::{
    AggregationRules, Columns, DataSource, KnownTables, PanelConfig, PanelType, Report, Step,
    display_keys,
};
use crate::schema::ColumnKind;

/// What a panel is checked against.
pub struct Context<'a> {
    pub tenant: &'a str,
    /// None: skip table and column checks (a shared panel no tenant uses).
    pub tables: Option<&'a KnownTables>,
    pub image_functions: &'a [&'a str],
    pub data_functions: &'a [&'a str],
}

/// Columns a `sql:` panel's query must return, by type.
fn sql_output_columns(kind: PanelType) -> &'static [&'static str] {
    match kind {
        PanelType::Timeseries => &["time", "value"],
        PanelType::Kpi => &["value"],
        PanelType::HealthStatus => &["service", "status", "time"],
        _ => &[],
    }
}

/// Placeholders the engine binds in `sql:` panels.
pub const SQL_PARAMETERS: [&str; 4] = ["from", "to", "bucket", "origin"];

const ALL_DISPLAY_KEYS: [PanelType; 6] = [
    PanelType::Timeseries,
    PanelType::Kpi,
    PanelType::HealthStatus,
    PanelType::Table,
    PanelType::CustomImage,
    PanelType::CustomTemplate,
];

pub fn check_panel(panel: &PanelConfig, ctx: &Context<'_>, r: &mut Report<'_>) {
    let kind = panel.kind;
    let p = |steps: &[&str]| -> Vec<Step> {
        std::iter::once("panel")
            .chain(steps.iter().copied())
            .map(Step::from)
            .collect()
    };
    for other in ALL_DISPLAY_KEYS {
        for key in display_keys(other) {
            if !display_keys(kind).contains(key) && r.locator.contains(&p(&["display", key])) {
                r.at(
                    &p(&["display", key]),
                    format!("`display.{key}` does not apply to a {} panel", kind.name()),
                );
            }
        }
    }
    let needs_data = matches!(
        kind,
        PanelType::Timeseries | PanelType::Kpi | PanelType::HealthStatus | PanelType::Table
    );
    match (&panel.data_source, &panel.sql) {
        (Some(_), Some(_)) => r.at(&p(&["sql"]), "give either `data_source` or `sql`, not both"),
        (None, None) if needs_data => r.at(
            &p(&["type"]),
            format!("a {} panel needs `data_source` or `sql`", kind.name()),
        ),
        _ => {}
    }
    if panel.stale_after.is_some() && kind != PanelType::HealthStatus {
        r.at(
            &p(&["stale_after"]),
            "`stale_after` applies to health_status panels only",
        );
    }
    if let Some(source) = &panel.data_source {
        check_data_source(panel, source, ctx, r);
    }
    if let Some(sql) = &panel.sql {
        let problems_before = r.problems.len();
        check_sql(sql, &p(&["sql"]), r);
        if let (Some(tables), true) = (ctx.tables, r.problems.len() == problems_before) {
            match plan_against(sql, tables) {
                Err(message) => r.at(&p(&["sql"]), format!("`sql`: {message}")),
                Ok(columns) => {
                    let missing: Vec<&str> = sql_output_columns(kind)
                        .iter()
                        .filter(|c| !columns.iter().any(|have| have == *c))
                        .copied()
                        .collect();
                    if !missing.is_empty() {
                        r.at(
                            &p(&["sql"]),
                            format!(
                                "`sql` must return column(s) {} for a {} panel (it returns: {})",
                                missing.join(", "),
                                kind.name(),
                                columns.join(", ")
                            ),
                        );
                    }
                }
            }
        }
    }
    if let Some(refresh) = panel.refresh_interval
        && refresh.0.is_zero()
    {
        r.at(
            &p(&["refresh_interval"]),
            "`refresh_interval` must be longer than zero",
        );
    }
    check_display(panel, r);
    if let Some(agg) = &panel.aggregation {
        if let Some(rules) = &agg.rules {
            let rules = AggregationRules {
                rules: rules.clone(),
                max_points_per_series: agg.max_points_per_series.unwrap_or(1),
            };
            for problem in rules.problems() {
                r.at(&p(&["aggregation", "rules"]), problem);
            }
        }
        if agg.max_points_per_series == Some(0) {
            r.at(
                &p(&["aggregation", "max_points_per_series"]),
                "`max_points_per_series` must be > 0",
            );
        }
    }
    match kind {
        PanelType::CustomImage => match panel.endpoint_name() {
            None => r.at(
                &p(&["type"]),
                "a custom_image panel needs `endpoint` naming a registered image function",
            ),
            Some(name) if !ctx.image_functions.contains(&name) => r.at(
                &p(&["endpoint"]),
                format!(
                    "no image function `{name}` is registered (known: {})",
                    ctx.image_functions.join(", ")
                ),
            ),
            Some(_) => {}
        },
        PanelType::CustomTemplate => {
            if panel.template.is_none() {
                r.at(&p(&["type"]), "a custom_template panel needs `template`");
            }
            if let Some(name) = panel.endpoint_name() {
                if !ctx.data_functions.contains(&name) {
                    r.at(
                        &p(&["endpoint"]),
                        format!(
                            "no data function `{name}` is registered (known: {})",
                            ctx.data_functions.join(", ")
                        ),
                    );
                }
                if panel.sql.is_some() {
                    r.at(
                        &p(&["endpoint"]),
                        "give either `endpoint` or `sql`, not both",
                    );
                }
            }
        }
        _ => {
            if panel.endpoint.is_some() {
                r.at(
                    &p(&["endpoint"]),
                    "`endpoint` applies to custom panels only",
                );
            }
        }
    }
    if panel.template.is_some() && kind != PanelType::CustomTemplate {
        r.at(
            &p(&["template"]),
            "`template` applies to custom_template panels only",
        );
    }
}

fn check_data_source(
    panel: &PanelConfig,
    source: &DataSource,
    ctx: &Context<'_>,
    r: &mut Report<'_>,
) {
    let kind = panel.kind;
    let ds = |steps: &[&str]| -> Vec<Step> {
        ["panel", "data_source"]
            .iter()
            .chain(steps.iter())
            .map(|s| Step::from(*s))
            .collect()
    };
    let columns = match ctx.tables {
        None => None,
        Some(tables) => match tables.get(&source.table) {
            Some(columns) => Some(columns),
            None => {
                let known: Vec<&str> = tables.keys().map(String::as_str).collect();
                r.at(
                    &ds(&["table"]),
                    format!(
                        "unknown table `{}` in tenant `{}` (known: {})",
                        source.table,
                        ctx.tenant,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                return;
            }
        },
    };
    let column_type = |name: &str| columns.map(|c| c.get(name).copied());
    let check_column = |r: &mut Report<'_>, path: Vec<Step>, name: &str| -> Option<ColumnKind> {
        match column_type(name) {
            None => None,
            Some(Some(t)) => Some(t),
            Some(None) => {
                r.at(
                    &path,
                    format!("unknown column `{name}` in table `{}`", source.table),
                );
                None
            }
        }
    };
    match (&source.columns, kind) {
        (Some(Columns::List(_)), t) if t != PanelType::Table => r.at(
            &ds(&["columns"]),
            format!(
                "a {} panel maps roles to columns (e.g. `value: cpu`), not a list",
                t.name()
            ),
        ),
        (Some(Columns::Roles(_)), PanelType::Table) => r.at(
            &ds(&["columns"]),
            "a table panel lists its columns (`- name: ...`), not a map",
        ),
        (None, PanelType::Table) => {
            r.at(&ds(&["table"]), "a table panel needs `data_source.columns`")
        }
        (Some(Columns::List(list)), PanelType::Table) => {
            let mut seen = BTreeSet::new();
            for (i, column) in list.iter().enumerate() {
                let path: Vec<Step> = ds(&["columns"])
                    .into_iter()
                    .chain([Step::Index(i), Step::from("name")])
                    .collect();
                if !seen.insert(column.name.as_str()) {
                    r.at(&path, format!("column `{}` is listed twice", column.name));
                }
                check_column(r, path, &column.name);
            }
            if let Some(sort) = &panel.display.default_sort
                && !list.iter().any(|c| &c.name == sort)
            {
                r.at(
                    &["panel", "display", "default_sort"].map(Step::from),
                    format!(
                        "`default_sort` names `{sort}`, which is not one of the panel's columns"
                    ),
                );
            }
        }
        (roles, _) => {
            let empty = BTreeMap::new();
            let map = match roles {
                Some(Columns::Roles(map)) => map,
                _ => &empty,
            };
            for (role, column) in map {
                let path: Vec<Step> = ds(&["columns", role]);
                if !kind.column_roles().contains(&role.as_str()) {
                    r.at(
                        &path,
                        format!(
                            "unknown column role `{role}` for a {} panel (expected one of: {})",
                            kind.name(),
                            kind.column_roles().join(", ")
                        ),
                    );
                    continue;
                }
                let found = check_column(r, path.clone(), column);
                match (role.as_str(), found) {
                    ("timestamp", Some(t)) if t != ColumnKind::Time => {
                        r.at(&path, format!("`{column}` is not a timestamp column"))
                    }
                    ("value", Some(t))
                        if matches!(kind, PanelType::Timeseries | PanelType::Kpi)
                            && !t.is_numeric() =>
                    {
                        r.at(
                            &path,
                            format!("`{column}` is not numeric; a {} value must be", kind.name()),
                        )
                    }
                    _ => {}
                }
            }
            for role in kind.required_roles() {
                if !map.contains_key(*role) {
                    r.at(
                        &ds(&["columns"]),
                        format!("a {} panel needs `data_source.columns.{role}`", kind.name()),
                    );
                }
            }
            if !map.contains_key("timestamp") {
                check_column(r, ds(&["columns"]), "time");
            }
        }
    }
    let clauses_path: Vec<Step> = if source.query.is_some() {
        ds(&["query"])
    } else {
        vec![Step::from("panel"), Step::from("query")]
    };
    if let Some(clauses) = panel.clauses() {
        if let Some(text) = &clauses.where_clause {
            let mut path = clauses_path.clone();
            if r.locator
                .contains(&[clauses_path.clone(), vec![Step::from("where")]].concat())
            {
                path.push(Step::from("where"));
            }
            match parse_where(text) {
                Err(message) => r.at(
                    &path,
                    format!("`where` is not a valid SQL expression: {message}"),
                ),
                Ok(idents) => {
                    for ident in idents {
                        check_column(r, path.clone(), &ident);
                    }
                }
            }
        }
        if let Some(text) = &clauses.order_by {
            let path = [clauses_path.clone(), vec![Step::from("order_by")]].concat();
            match parse_order_by(text) {
                Err(message) => r.at(
                    &path,
                    format!("`order_by` is not a valid SQL ORDER BY list: {message}"),
                ),
                Ok(idents) => {
                    for ident in idents {
                        check_column(r, path.clone(), &ident);
                    }
                }
            }
        }
    }
}

fn check_display(panel: &PanelConfig, r: &mut Report<'_>) {
    let d = &panel.display;
    let path = |key: &str| ["panel", "display", key].map(Step::from).to_vec();
    for (i, pair) in d.thresholds.windows(2).enumerate() {
        if pair[1].value <= pair[0].value {
            let mut at = path("thresholds");
            at.extend([Step::Index(i + 1), Step::from("value")]);
            r.at(
                &at,
                format!(
                    "thresholds must ascend: {} comes after {}",
                    pair[1].value, pair[0].value
                ),
            );
        }
    }
    if let Some([lo, hi]) = d.y_axis_range
        && lo >= hi
    {
        r.at(
            &path("y_axis_range"),
            format!("`y_axis_range` must be [min, max] with min < max, got [{lo}, {hi}]"),
        );
    }
    if d.pagination == Some(0) {
        r.at(&path("pagination"), "`pagination` must be at least 1");
    }
    let colors = d
        .line_color
        .iter()
        .map(|c| (path("line_color"), c))
        .chain(d.thresholds.iter().enumerate().map(|(i, t)| {
            let mut at = path("thresholds");
            at.extend([Step::Index(i), Step::from("color")]);
            (at, &t.color)
        }))
        .chain(d.status_mapping.iter().map(|(k, s)| {
            let mut at = path("status_mapping");
            at.extend([Step::Key(k.0.clone()), Step::from("color")]);
            (at, &s.color)
        }));
    for (at, color) in colors {
        if !is_color(color) {
            r.at(
                &at,
                format!("`{color}` is not a color (write #RGB or #RRGGBB)"),
            );
        }
    }
}

fn is_color(c: &str) -> bool {
    c.strip_prefix('#').is_some_and(|hex| {
        matches!(hex.len(), 3 | 6) && hex.chars().all(|ch| ch.is_ascii_hexdigit())
    })
}

/// Compiles a template the way the engine will, mapping minijinja's line into the YAML file.
pub fn check_template(template: &str, first_line: usize, key: &[Step], r: &mut Report<'_>) {
    let env = crate::render::template_environment();
    if let Err(e) = env.template_from_str(template) {
        match e.line() {
            Some(line) => {
                let (_, column) = r.locator.locate(key);
                r.at_position(
                    first_line + line - 1,
                    column,
                    format!("template: {}", e.detail().unwrap_or("syntax error")),
                );
            }
            None => r.at(key, format!("template: {e}")),
        }
    }
}
