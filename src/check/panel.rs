//! The validation pass after serde for one panel: every problem with its `file:line:column`.
//! Identifiers are checked against the tenant's tables (declared in tenant.yaml, or live when
//! the server runs), operator SQL and filter fragments against DataFusion's parser and
//! planner, templates against minijinja.

use std::collections::{BTreeMap, BTreeSet};

use super::sql::{check_fragment_placeholders, check_sql, plan_against};
use crate::config::{
    AggregationRules, Columns, DataSource, KnownTables, PanelConfig, Report, RowLink, Step,
    TableColumn,
};
use crate::panels::{Endpoint, KindSpec, Source, kinds};
use crate::query::{parse_order_by, parse_where};
use crate::schema::ColumnKind;

/// What a panel is checked against.
pub struct Context<'a> {
    pub tenant: &'a str,
    /// None: skip table and column checks (a shared panel no tenant uses).
    pub tables: Option<&'a KnownTables>,
    pub image_functions: &'a [&'a str],
    pub data_functions: &'a [&'a str],
    /// Dashboard variables every dashboard placing the panel declares (`$name` binds them).
    pub variables: &'a [String],
    /// The tenant's dashboards and the variables each declares (row links point at them);
    /// None: not checked (a shared panel no tenant uses).
    pub dashboards: Option<&'a BTreeMap<String, Vec<String>>>,
}

fn at(steps: &[&str]) -> Vec<Step> {
    std::iter::once("panel")
        .chain(steps.iter().copied())
        .map(Step::from)
        .collect()
}

pub fn check_panel(panel: &PanelConfig, ctx: &Context<'_>, r: &mut Report<'_>) {
    let Some(spec) = kinds::spec(&panel.kind) else {
        r.at(
            &at(&["type"]),
            format!(
                "unknown panel type `{}`, expected one of {}",
                panel.kind,
                kinds::names()
            ),
        );
        return;
    };
    check_keys(panel, spec, r);
    if let Some(link) = &panel.display.link {
        check_row_link(link, ctx, &at(&["display", "link"]), r);
    }
    // A table's `sql:` may name how its columns show (display, format, links) in
    // `data_source.columns`; the names are then the query's, checked against what it returns.
    let shown_sql = spec.name == "table"
        && panel.sql.is_some()
        && panel
            .data_source
            .as_ref()
            .is_some_and(|d| d.query.is_none() && matches!(d.columns, Some(Columns::List(_))));
    match (&panel.data_source, &panel.sql) {
        (Some(_), Some(_)) if shown_sql => {}
        (Some(_), Some(_)) => r.at(
            &at(&["sql"]),
            "give either `data_source` or `sql`, not both",
        ),
        (None, None) if !matches!(spec.source, Source::None | Source::SqlOnly) => r.at(
            &at(&["type"]),
            format!("a {} panel needs `data_source` or `sql`", spec.name),
        ),
        _ => {}
    }
    if let Some(source) = panel.data_source.as_ref().filter(|_| !shown_sql) {
        check_data_source(panel, spec, source, ctx, r);
    }
    if let Some(sql) = &panel.sql {
        let returned = check_panel_sql(sql, spec, ctx, r);
        if let (true, Some(returned)) = (shown_sql, returned) {
            check_shown_sql_columns(panel, &returned, ctx, r);
        }
    }
    if let Some(refresh) = panel.refresh_interval
        && refresh.0.is_zero()
    {
        r.at(
            &at(&["refresh_interval"]),
            "`refresh_interval` must be longer than zero",
        );
    }
    check_display(panel, r);
    check_aggregation(panel, r);
    check_functions(panel, spec, ctx, r);
    super::actions::check_actions(panel, r);
}

/// Keys that belong to other kinds: display keys, `stale_after`, `template`.
fn check_keys(panel: &PanelConfig, spec: &KindSpec, r: &mut Report<'_>) {
    let mut refused = BTreeSet::new();
    for other in kinds::ALL {
        for key in other.spec().display_keys {
            if !spec.display_keys.contains(key)
                && r.locator.contains(&at(&["display", key]))
                && refused.insert(*key)
            {
                r.at(
                    &at(&["display", key]),
                    format!("`display.{key}` does not apply to a {} panel", spec.name),
                );
            }
        }
    }
    if panel.stale_after.is_some() && !spec.stale_after {
        r.at(
            &at(&["stale_after"]),
            "`stale_after` applies to health_status panels only",
        );
    }
    if panel.template.is_some() && !spec.template {
        r.at(
            &at(&["template"]),
            "`template` applies to custom_template panels only",
        );
    }
    if spec.template && panel.template.is_none() {
        r.at(
            &at(&["type"]),
            format!("a {} panel needs `template`", spec.name),
        );
    }
}

/// A `sql:` query: read-only, known placeholders, planned against the tenant's tables, and
/// returning the columns the kind reads.
/// Returns the columns it returns, when it could be planned.
fn check_panel_sql(
    sql: &str,
    spec: &KindSpec,
    ctx: &Context<'_>,
    r: &mut Report<'_>,
) -> Option<Vec<String>> {
    let problems_before = r.problems.len();
    check_sql(sql, ctx.variables, &at(&["sql"]), r);
    let (Some(tables), true) = (ctx.tables, r.problems.len() == problems_before) else {
        return None;
    };
    match plan_against(sql, tables, ctx.variables) {
        Err(message) => {
            r.at(&at(&["sql"]), format!("`sql`: {message}"));
            None
        }
        Ok(columns) => {
            let missing: Vec<&str> = spec
                .sql_columns
                .iter()
                .filter(|c| !columns.iter().any(|have| have == *c))
                .copied()
                .collect();
            if !missing.is_empty() {
                r.at(
                    &at(&["sql"]),
                    format!(
                        "`sql` must return column(s) {} for a {} panel (it returns: {})",
                        missing.join(", "),
                        spec.name,
                        columns.join(", ")
                    ),
                );
            }
            Some(columns)
        }
    }
}

fn check_aggregation(panel: &PanelConfig, r: &mut Report<'_>) {
    let Some(agg) = &panel.aggregation else {
        return;
    };
    if let Some(rules) = &agg.rules {
        let rules = AggregationRules {
            rules: rules.clone(),
            max_points_per_series: agg.max_points_per_series.unwrap_or(1),
        };
        for problem in rules.problems() {
            r.at(&at(&["aggregation", "rules"]), problem);
        }
    }
    if agg.max_points_per_series == Some(0) {
        r.at(
            &at(&["aggregation", "max_points_per_series"]),
            "`max_points_per_series` must be > 0",
        );
    }
}

/// `endpoint:` names a registered function of the kind's sort, or is refused.
fn check_functions(panel: &PanelConfig, spec: &KindSpec, ctx: &Context<'_>, r: &mut Report<'_>) {
    let unknown = |what: &str, name: &str, known: &[&str]| {
        format!(
            "no {what} function `{name}` is registered (known: {})",
            known.join(", ")
        )
    };
    match (&spec.endpoint, panel.endpoint_name()) {
        (Endpoint::Image, None) => r.at(
            &at(&["type"]),
            format!(
                "a {} panel needs `endpoint` naming a registered image function",
                spec.name
            ),
        ),
        (Endpoint::Image, Some(name)) if !ctx.image_functions.contains(&name) => r.at(
            &at(&["endpoint"]),
            unknown("image", name, ctx.image_functions),
        ),
        (Endpoint::Data, Some(name)) => {
            if !ctx.data_functions.contains(&name) {
                r.at(
                    &at(&["endpoint"]),
                    unknown("data", name, ctx.data_functions),
                );
            }
            if panel.sql.is_some() {
                r.at(
                    &at(&["endpoint"]),
                    "give either `endpoint` or `sql`, not both",
                );
            }
        }
        (Endpoint::None, Some(_)) => r.at(
            &at(&["endpoint"]),
            "`endpoint` applies to custom panels only",
        ),
        _ => {}
    }
}

/// `panel.data_source.<steps>`.
fn ds(steps: &[&str]) -> Vec<Step> {
    ["panel", "data_source"]
        .iter()
        .chain(steps.iter())
        .map(|s| Step::from(*s))
        .collect()
}

/// The columns of a data source's table, when the tables are known.
struct TableColumns<'a> {
    table: &'a str,
    columns: Option<&'a BTreeMap<String, ColumnKind>>,
}

impl TableColumns<'_> {
    /// The column's kind; an unknown column is reported at `path`.
    fn check(&self, r: &mut Report<'_>, path: Vec<Step>, name: &str) -> Option<ColumnKind> {
        let columns = self.columns?;
        let kind = columns.get(name).copied();
        if kind.is_none() {
            r.at(
                &path,
                format!("unknown column `{name}` in table `{}`", self.table),
            );
        }
        kind
    }
}

fn check_data_source(
    panel: &PanelConfig,
    spec: &KindSpec,
    source: &DataSource,
    ctx: &Context<'_>,
    r: &mut Report<'_>,
) {
    let columns = match ctx.tables.map(|tables| (tables.get(&source.table), tables)) {
        None => None,
        Some((Some(columns), _)) => Some(columns),
        Some((None, tables)) => {
            let known: Vec<&str> = tables.keys().map(String::as_str).collect();
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            r.at(
                &ds(&["table"]),
                format!(
                    "unknown table `{}` in tenant `{}` (known: {known})",
                    source.table, ctx.tenant
                ),
            );
            return;
        }
    };
    let table = TableColumns {
        table: &source.table,
        columns,
    };
    let is_table = matches!(spec.source, Source::Columns);
    let misplaced = |what: &str| format!("a {} panel {what}", spec.name);
    match &source.columns {
        Some(Columns::List(_)) if !is_table => r.at(
            &ds(&["columns"]),
            misplaced("maps roles to columns (e.g. `value: cpu`), not a list"),
        ),
        Some(Columns::Roles(_)) if is_table => r.at(
            &ds(&["columns"]),
            misplaced("lists its columns (`- name: ...`), not a map"),
        ),
        None if is_table => r.at(&ds(&["table"]), misplaced("needs `data_source.columns`")),
        Some(Columns::List(list)) => check_column_list(panel, list, &table, ctx, r),
        Some(Columns::Roles(map)) => check_roles(spec, map, &table, r),
        None => check_roles(spec, &BTreeMap::new(), &table, r),
    }
    check_clauses(panel, source, &table, ctx.variables, r);
}

/// A `sql:` table's listed columns: each one the query returns, once; links checked.
fn check_shown_sql_columns(
    panel: &PanelConfig,
    returned: &[String],
    ctx: &Context<'_>,
    r: &mut Report<'_>,
) {
    let Some(Columns::List(list)) = panel.data_source.as_ref().and_then(|d| d.columns.as_ref())
    else {
        return;
    };
    let mut seen = BTreeSet::new();
    for (i, column) in list.iter().enumerate() {
        let path: Vec<Step> = ds(&["columns"])
            .into_iter()
            .chain([Step::Index(i), Step::from("name")])
            .collect();
        if !seen.insert(column.name.as_str()) {
            r.at(&path, format!("column `{}` is listed twice", column.name));
        } else if !returned.contains(&column.name) {
            r.at(
                &path,
                format!(
                    "`{}` is not a column the panel's `sql` returns ({})",
                    column.name,
                    returned.join(", ")
                ),
            );
        }
        if let Some(link) = &column.link {
            let link_path: Vec<Step> = ds(&["columns"])
                .into_iter()
                .chain([Step::Index(i), Step::from("link")])
                .collect();
            check_row_link(link, ctx, &link_path, r);
        }
    }
}

/// A table panel's columns: each exists once, and `default_sort` is one of them.
fn check_column_list(
    panel: &PanelConfig,
    list: &[TableColumn],
    table: &TableColumns<'_>,
    ctx: &Context<'_>,
    r: &mut Report<'_>,
) {
    let mut seen = BTreeSet::new();
    for (i, column) in list.iter().enumerate() {
        let at = |key: &str| -> Vec<Step> {
            ds(&["columns"])
                .into_iter()
                .chain([Step::Index(i), Step::from(key)])
                .collect()
        };
        let path = at("name");
        if !seen.insert(column.name.as_str()) {
            r.at(&path, format!("column `{}` is listed twice", column.name));
        }
        table.check(r, path, &column.name);
        if let Some(link) = &column.link {
            check_row_link(link, ctx, &at("link"), r);
        }
    }
    if let Some(sort) = &panel.display.default_sort
        && !list.iter().any(|c| &c.name == sort)
    {
        r.at(
            &["panel", "display", "default_sort"].map(Step::from),
            format!("`default_sort` names `{sort}`, which is not one of the panel's columns"),
        );
    }
}

/// A row link names one of the tenant's dashboards, variables it declares, and templates that
/// compile.
fn check_row_link(link: &RowLink, ctx: &Context<'_>, path: &[Step], r: &mut Report<'_>) {
    if let Some(dashboards) = ctx.dashboards {
        match dashboards.get(&link.dashboard) {
            None => r.at(
                path,
                format!(
                    "`link` names dashboard `{}`, which the tenant does not have",
                    link.dashboard
                ),
            ),
            Some(declared) => {
                for name in link.vars.keys().filter(|n| !declared.contains(n)) {
                    r.at(
                        path,
                        format!(
                            "`link` sets variable `{name}`, which dashboard `{}` does not declare",
                            link.dashboard
                        ),
                    );
                }
            }
        }
    }
    let env = minijinja::Environment::new();
    for (name, template) in &link.vars {
        if let Err(e) = env.template_from_str(template) {
            r.at(path, format!("`link.vars.{name}`: {e}"));
        }
    }
}

/// Columns by role: known roles, existing columns of the right kind, required roles given.
fn check_roles(
    spec: &KindSpec,
    map: &BTreeMap<String, String>,
    table: &TableColumns<'_>,
    r: &mut Report<'_>,
) {
    let (roles, required, numeric_value) = match spec.source {
        Source::Roles {
            roles,
            required,
            numeric_value,
        } => (roles, required, numeric_value),
        _ => (&[][..], &[][..], false),
    };
    for (role, column) in map {
        let path: Vec<Step> = ds(&["columns", role]);
        if !roles.contains(&role.as_str()) {
            r.at(
                &path,
                format!(
                    "unknown column role `{role}` for a {} panel (expected one of: {})",
                    spec.name,
                    roles.join(", ")
                ),
            );
            continue;
        }
        match (role.as_str(), table.check(r, path.clone(), column)) {
            ("timestamp", Some(t)) if t != ColumnKind::Time => {
                r.at(&path, format!("`{column}` is not a timestamp column"))
            }
            ("value", Some(t)) if numeric_value && !t.is_numeric() => r.at(
                &path,
                format!("`{column}` is not numeric; a {} value must be", spec.name),
            ),
            _ => {}
        }
    }
    for role in required {
        if !map.contains_key(*role) {
            r.at(
                &ds(&["columns"]),
                format!("a {} panel needs `data_source.columns.{role}`", spec.name),
            );
        }
    }
    if !map.contains_key("timestamp") {
        table.check(r, ds(&["columns"]), "time");
    }
}

/// `where` and `order_by`: valid SQL fragments naming existing columns.
fn check_clauses(
    panel: &PanelConfig,
    source: &DataSource,
    table: &TableColumns<'_>,
    variables: &[String],
    r: &mut Report<'_>,
) {
    let Some(clauses) = panel.clauses() else {
        return;
    };
    let clauses_path: Vec<Step> = if source.query.is_some() {
        ds(&["query"])
    } else {
        vec![Step::from("panel"), Step::from("query")]
    };
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
                check_fragment_placeholders(text, variables, &path, r);
                for ident in idents {
                    table.check(r, path.clone(), &ident);
                }
            }
        }
    }
    if let Some(text) = &clauses.order_by {
        let path = [clauses_path, vec![Step::from("order_by")]].concat();
        match parse_order_by(text) {
            Err(message) => r.at(
                &path,
                format!("`order_by` is not a valid SQL ORDER BY list: {message}"),
            ),
            Ok(idents) => {
                for ident in idents {
                    table.check(r, path.clone(), &ident);
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
