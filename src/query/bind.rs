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
