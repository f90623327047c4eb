//! Checks of operator-written SQL: whole `sql:` queries (read-only, only placeholders the
//! engine binds), planned against empty tables shaped like the tenant's (`last_rows` too). The
//! `where` / `order_by` fragments are parsed in `query::fragments`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Value, visit_expressions};

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::empty::EmptyTable;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Expr as PlanExpr;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;

use crate::config::{KnownTables, Report, Step};

/// Placeholders the engine binds in `sql:` panels.
pub const SQL_PARAMETERS: [&str; 4] = ["from", "to", "bucket", "origin"];

/// Checks operator SQL: one read-only query whose `$name` placeholders are ones we bind — the
/// engine's and `variables`, the dashboard variables every dashboard placing the panel declares.
pub fn check_sql(sql: &str, variables: &[String], path: &[Step], r: &mut Report<'_>) {
    if let Err(e) = crate::query::check_read_only(sql) {
        r.at(path, format!("`sql`: {e}"));
        return;
    }
    let Ok(statements) = datafusion::sql::parser::DFParser::parse_sql(sql) else {
        return;
    };
    let mut unknown = BTreeSet::new();
    for statement in &statements {
        if let datafusion::sql::parser::Statement::Statement(s) = statement {
            let _ = visit_expressions(s.as_ref(), |e| {
                if let Expr::Value(v) = e
                    && let Value::Placeholder(name) = &v.value
                {
                    let bare = name.trim_start_matches(['$', ':', '?']);
                    if !bound(bare, variables) {
                        unknown.insert(name.clone());
                    }
                }
                ControlFlow::<()>::Continue(())
            });
        }
    }
    for name in unknown {
        r.at(path, unbound_message("sql", &name));
    }
}

fn bound(name: &str, variables: &[String]) -> bool {
    SQL_PARAMETERS.contains(&name) || variables.iter().any(|v| v == name)
}

fn unbound_message(key: &str, name: &str) -> String {
    format!(
        "`{key}` uses `{name}`; the engine binds only $from, $to, $bucket and $origin, and a \
         dashboard variable must be declared on every dashboard that places the panel"
    )
}

/// `$name`s in a `where:` fragment that nothing binds.
pub fn check_fragment_placeholders(
    text: &str,
    variables: &[String],
    path: &[Step],
    r: &mut Report<'_>,
) {
    let mut unknown = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        let name: String = rest[at + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && !bound(&name, variables) {
            unknown.insert(format!("${name}"));
        }
        rest = &rest[at + 1..];
    }
    for name in unknown {
        r.at(path, unbound_message("where", &name));
    }
}

/// Plans `sql` against empty tables shaped like `tables` (what tenant.yaml declares and the
/// store holds), so a misspelt table or column in a `sql:` panel fails at load, not at the
/// first request. Returns the query's output column names.
pub fn plan_against(
    sql: &str,
    tables: &KnownTables,
    variables: &[String],
) -> Result<Vec<String>, String> {
    let mut statement = DFParser::parse_sql(sql)
        .map_err(|e| e.to_string())?
        .pop_front()
        .ok_or("empty statement")?;
    let mut params = crate::query::Params::new();
    let ts = ScalarValue::TimestampNanosecond(Some(0), None);
    for name in ["from", "to", "origin"] {
        params.insert(name.into(), ts.clone());
    }
    params.insert("bucket".into(), ScalarValue::new_interval_mdn(0, 0, 1));
    for name in variables {
        params.insert(name.clone(), ScalarValue::Utf8(Some(String::new())));
    }
    crate::query::type_placeholders(&mut statement, &params).map_err(|e| e.to_string())?;
    let ctx = SessionContext::new();
    let mut schemas = BTreeMap::new();
    for (name, columns) in tables {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(column, kind)| Field::new(column, kind.data_type(), true))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        schemas.insert(name.clone(), schema.clone());
        let table = EmptyTable::new(schema);
        ctx.register_table(name.as_str(), Arc::new(table))
            .map_err(|e| e.to_string())?;
    }
    ctx.register_udtf(crate::query::LAST_ROWS, Arc::new(ShapedLastRows(schemas)));
    // Planning resolves tables through async traits but never waits on I/O here.
    let plan = futures::executor::block_on(ctx.state().statement_to_plan(statement))
        .map_err(|e| e.find_root().to_string().replace('\n', " "))?;
    Ok(plan
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect())
}

/// `last_rows('table')` while checking: a table of the named table's shape, so rules and
/// panels that read the newest rows plan like the server plans them.
#[derive(Debug)]
struct ShapedLastRows(BTreeMap<String, SchemaRef>);

impl TableFunctionImpl for ShapedLastRows {
    fn call_with_args(
        &self,
        args: TableFunctionArgs,
    ) -> datafusion::common::Result<Arc<dyn TableProvider>> {
        let name = match args.exprs() {
            [PlanExpr::Literal(ScalarValue::Utf8(Some(name)), _)] => name,
            _ => {
                return datafusion::common::plan_err!(
                    "last_rows() takes one table name as a string"
                );
            }
        };
        match self.0.get(name) {
            Some(schema) => Ok(Arc::new(EmptyTable::new(schema.clone()))),
            None => datafusion::common::plan_err!("last_rows('{name}'): no table named '{name}'"),
        }
    }
}
