//! Only reads run: a statement is parsed with DataFusion's own SQL parser and must be a single
//! query (`SELECT`, `WITH`, `VALUES`, or `EXPLAIN` of one). DDL, DML, COPY, SET and friends are
//! refused before planning, and planning itself runs with DDL/DML/statements disabled as a
//! second fence.

use datafusion::common::DataFusionError;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::parser::ParserError;

use super::QueryError;

/// Checks that `sql` is exactly one read-only statement.
pub fn check_read_only(sql: &str) -> Result<(), QueryError> {
    let statements = DFParser::parse_sql(sql).map_err(|e| QueryError::Parse {
        message: match e {
            // The parser's own words, without the `SQL error: ParserError("…")` wrapping.
            DataFusionError::SQL(inner, _) => match *inner {
                ParserError::ParserError(m) | ParserError::TokenizerError(m) => m,
                other => other.to_string(),
            },
            other => other.to_string(),
        },
    })?;
    if statements.len() != 1 {
        return Err(QueryError::NotReadOnly {
            what: format!("{} statements (send exactly one)", statements.len()),
        });
    }
    match &statements[0] {
        DfStatement::Statement(stmt) => check_statement(stmt),
        DfStatement::Explain(explain) => match explain.statement.as_ref() {
            DfStatement::Statement(stmt) => check_statement(stmt),
            other => Err(refused(other)),
        },
        other => Err(refused(other)),
    }
}

fn check_statement(stmt: &Statement) -> Result<(), QueryError> {
    match stmt {
        Statement::Query(_) => Ok(()),
        Statement::Explain { statement, .. } => check_statement(statement),
        other => Err(refused(other)),
    }
}

fn refused(stmt: &impl std::fmt::Display) -> QueryError {
    let text = stmt.to_string();
    let keyword: String = text
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    QueryError::NotReadOnly {
        what: format!("`{keyword}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pass() {
        for sql in [
            "SELECT 1",
            "select host, avg(v) from cpu where time > now() - interval '1 hour' group by host",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "EXPLAIN SELECT * FROM cpu",
            "VALUES (1), (2)",
        ] {
            check_read_only(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn writes_and_settings_are_refused() {
        for sql in [
            "CREATE TABLE t (a INT)",
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/etc'",
            "DROP TABLE cpu",
            "INSERT INTO cpu VALUES (1)",
            "DELETE FROM cpu",
            "UPDATE cpu SET v = 1",
            "COPY cpu TO '/tmp/x.parquet'",
            "SET datafusion.execution.batch_size = 1",
            "SELECT 1; DROP TABLE cpu",
            "EXPLAIN COPY cpu TO '/tmp/x'",
            "CREATE VIEW v AS SELECT 1",
        ] {
            assert!(
                matches!(check_read_only(sql), Err(QueryError::NotReadOnly { .. })),
                "{sql} should be refused"
            );
        }
    }

    #[test]
    fn garbage_is_a_parse_error() {
        assert!(matches!(
            check_read_only("SELEC 1"),
            Err(QueryError::Parse { .. })
        ));
    }
}
