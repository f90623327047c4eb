//! Request values reach SQL only as bound parameters. Operator SQL and generated panel SQL
//! name them `$from`, `$to`, `$bucket`, …; before planning, each placeholder is wrapped in a
//! `CAST` to its value's type in the parsed statement (DataFusion cannot infer a placeholder's
//! type inside a function call such as `date_bin($bucket, time)`), then the plan's
//! placeholders are replaced by the values. No value is ever spliced into SQL text.

use std::collections::HashMap;
use std::ops::ControlFlow;

use arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    CastKind, DataType as SqlType, ExactNumberInfo, Expr, TimezoneInfo, Value,
    visit_expressions_mut,
};

use super::QueryError;

/// Named parameter values for one query (`from` binds `$from`).
pub type Params = HashMap<String, ScalarValue>;

/// Wraps every `$name` placeholder with a CAST to the type of `params[name]`; a placeholder
/// without a value is an error naming it.
pub fn type_placeholders(statement: &mut DfStatement, params: &Params) -> Result<(), QueryError> {
    let DfStatement::Statement(inner) = statement else {
        return Ok(());
    };
    let mut missing: Option<String> = None;
    let _ = visit_expressions_mut(inner.as_mut(), |expr| {
        let Expr::Value(v) = expr else {
            return ControlFlow::<()>::Continue(());
        };
        let Value::Placeholder(name) = &v.value else {
            return ControlFlow::Continue(());
        };
        let bare = name.trim_start_matches('$');
        let Some(value) = params.get(bare) else {
            missing.get_or_insert_with(|| name.clone());
            return ControlFlow::Continue(());
        };
        let Some(sql_type) = sql_type(&value.data_type()) else {
            return ControlFlow::Continue(());
        };
        let placeholder = expr.clone();
        *expr = Expr::Cast {
            kind: CastKind::Cast,
            expr: Box::new(placeholder),
            data_type: sql_type,
            array: false,
            format: None,
        };
        ControlFlow::Continue(())
    });
    match missing {
        Some(name) => Err(QueryError::Plan {
            message: format!("no value for parameter {name}"),
        }),
        None => Ok(()),
    }
}

/// Expands each list parameter (a multi-value dashboard variable) written as an item of an
/// `IN (…)` list into one placeholder per value — `IN ($region)` becomes
/// `IN ($region__0, $region__1)`, each bound — and an empty list into `IN (NULL)`, which holds
/// for no row. A list parameter anywhere else is an error naming it.
pub fn expand_lists(statement: &mut DfStatement, params: &mut Params) -> Result<(), QueryError> {
    let DfStatement::Statement(inner) = statement else {
        return Ok(());
    };
    let lists: HashMap<String, Vec<ScalarValue>> = params
        .iter()
        .filter_map(|(name, value)| list_values(value).map(|v| (name.clone(), v)))
        .collect();
    if lists.is_empty() {
        return Ok(());
    }
    let _ = visit_expressions_mut(inner.as_mut(), |expr| {
        let Expr::InList { list, .. } = expr else {
            return ControlFlow::<()>::Continue(());
        };
        let mut expanded = Vec::with_capacity(list.len());
        for item in list.drain(..) {
            let name = placeholder_name(&item).map(str::to_string);
            match name.as_deref().and_then(|n| lists.get(n)) {
                Some(values) if values.is_empty() => expanded.push(Expr::value(Value::Null)),
                Some(values) => {
                    let name = name.unwrap_or_default();
                    for (i, v) in values.iter().enumerate() {
                        let each = format!("{name}__{i}");
                        params.insert(each.clone(), v.clone());
                        expanded.push(Expr::value(Value::Placeholder(format!("${each}"))));
                    }
                }
                None => expanded.push(item),
            }
        }
        *list = expanded;
        ControlFlow::Continue(())
    });
    let mut misplaced = None;
    let _ = visit_expressions_mut(inner.as_mut(), |expr| {
        if let Some(name) = placeholder_name(expr)
            && lists.contains_key(name)
        {
            misplaced.get_or_insert_with(|| name.to_string());
        }
        ControlFlow::<()>::Continue(())
    });
    match misplaced {
        Some(name) => Err(QueryError::Plan {
            message: format!(
                "${name} holds several values: use it as the list of an IN, `x IN (${name})`"
            ),
        }),
        None => Ok(()),
    }
}

fn placeholder_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(name) => Some(name.trim_start_matches('$')),
            _ => None,
        },
        _ => None,
    }
}

fn list_values(value: &ScalarValue) -> Option<Vec<ScalarValue>> {
    let ScalarValue::List(list) = value else {
        return None;
    };
    let values = list.value(0);
    (0..values.len())
        .map(|i| ScalarValue::try_from_array(&values, i).ok())
        .collect()
}

fn sql_type(data_type: &DataType) -> Option<SqlType> {
    Some(match data_type {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            SqlType::Timestamp(Some(9), TimezoneInfo::None)
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => SqlType::Interval {
            fields: None,
            precision: None,
        },
        DataType::Utf8 => SqlType::Varchar(None),
        DataType::Int64 => SqlType::BigInt(None),
        DataType::Float64 => SqlType::Double(ExactNumberInfo::None),
        DataType::Boolean => SqlType::Boolean,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn list(values: &[&str]) -> ScalarValue {
        let values: Vec<ScalarValue> = values
            .iter()
            .map(|v| ScalarValue::Utf8(Some(v.to_string())))
            .collect();
        ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Utf8))
    }

    fn expanded(sql: &str, value: ScalarValue) -> Result<(String, Params), QueryError> {
        let mut statement = DFParser::parse_sql(sql).unwrap().pop_front().unwrap();
        let mut params = Params::from([("r".to_string(), value)]);
        expand_lists(&mut statement, &mut params)?;
        Ok((statement.to_string(), params))
    }

    #[test]
    fn a_list_expands_into_one_bound_placeholder_per_value() {
        let (sql, params) = expanded(
            "SELECT * FROM t WHERE x IN ($r) AND y NOT IN ('z', $r)",
            list(&["a", "b"]),
        )
        .unwrap();
        assert!(sql.contains("x IN ($r__0, $r__1)"), "{sql}");
        assert!(sql.contains("y NOT IN ('z', $r__0, $r__1)"), "{sql}");
        assert_eq!(params["r__1"], ScalarValue::Utf8(Some("b".into())));
        let (sql, _) = expanded("SELECT * FROM t WHERE x IN ($r)", list(&[])).unwrap();
        assert!(sql.contains("x IN (NULL)"), "{sql}");
    }

    #[test]
    fn a_list_outside_an_in_is_refused_by_name() {
        let err = expanded("SELECT * FROM t WHERE x = $r", list(&["a"])).unwrap_err();
        assert!(err.to_string().contains("$r holds several values"), "{err}");
    }
}
