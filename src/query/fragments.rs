//! The column names an operator-written fragment reads: a `where` filter or an `order_by`
//! list, parsed with DataFusion's SQL parser. Used to check panels at load (`check`) and to tell
//! whether a filter reads only tags (`panels`, answering from the newest rows).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, visit_expressions};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

/// Parses a `where` fragment as one SQL expression; returns the column names it reads.
pub fn parse_where(text: &str) -> Result<Vec<String>, String> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| e.to_string())?;
    let expr = parser.parse_expr().map_err(|e| e.to_string())?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(format!("unexpected `{}` after the expression", next.token));
    }
    Ok(identifiers(&expr))
}

/// Parses an `order_by` fragment (`col DESC, other`); returns the column names it reads.
pub fn parse_order_by(text: &str) -> Result<Vec<String>, String> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| e.to_string())?;
    let list = parser
        .parse_comma_separated(Parser::parse_order_by_expr)
        .map_err(|e| e.to_string())?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(format!("unexpected `{}` after the list", next.token));
    }
    Ok(list.iter().flat_map(|o| identifiers(&o.expr)).collect())
}

fn identifiers(expr: &Expr) -> Vec<String> {
    let mut out = vec![];
    let _ = visit_expressions(expr, |e| {
        if let Expr::Identifier(ident) = e {
            // Unquoted identifiers are case-folded by DataFusion, as here.
            out.push(match ident.quote_style {
                Some(_) => ident.value.clone(),
                None => ident.value.to_lowercase(),
            });
        }
        ControlFlow::<()>::Continue(())
    });
    out
}
