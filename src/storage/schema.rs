//! A table's schema in the storage model's terms: one `time` column, tag columns that identify a
//! series, and typed field columns. Schemas only grow: a write may add nullable columns, never
//! change a column's type.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::{Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use super::StorageError;
use crate::config::TableConfig;
pub use crate::schema::{ColumnKind, FieldType, TIME_COLUMN, tag_type, time_type};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(flatten)]
    pub kind: ColumnKind,
}

/// The stored column of `field`'s partial aggregate `part` (`sum`, `count`, `min`, `max`), as
/// rollups store them.
pub fn part_column(field: &str, part: &str) -> String {
    format!("{field}#{part}")
}

/// Whether `name` is a rollup's sum column (`part_column(field, "sum")`): sums of many values,
/// which hardly ever repeat. Beside `part_column` so the two cannot drift apart.
pub fn is_sum_column(name: &str) -> bool {
    name.ends_with("#sum")
}

/// The columns of one table, in the order they were added (`time` first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    columns: Vec<Column>,
}

impl Default for TableSchema {
    fn default() -> Self {
        Self {
            columns: vec![Column {
                name: TIME_COLUMN.into(),
                kind: ColumnKind::Time,
            }],
        }
    }
}

impl TableSchema {
    /// The schema a table declared in tenant.yaml starts with.
    pub fn declared(config: &TableConfig) -> Self {
        let mut schema = Self::default();
        for tag in &config.tags {
            schema.push(tag, ColumnKind::Tag);
        }
        for (name, t) in config.field_types() {
            schema.push(&name, ColumnKind::Field(t));
        }
        schema
    }

    /// This schema with `config`'s columns it lacks added: a system table's columns exist from
    /// its first row, even those the first rows leave empty.
    pub fn including(&self, config: &TableConfig) -> Self {
        let mut schema = self.clone();
        for column in Self::declared(config).columns {
            schema.push(&column.name, column.kind);
        }
        schema
    }

    /// A schema with exactly these columns (`time` first), for derived files such as rollups.
    pub(super) fn from_columns(columns: Vec<Column>) -> Self {
        Self { columns }
    }

    fn push(&mut self, name: &str, kind: ColumnKind) {
        if self.kind_of(name).is_none() {
            self.columns.push(Column {
                name: name.to_string(),
                kind,
            });
        }
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn kind_of(&self, name: &str) -> Option<ColumnKind> {
        self.columns.iter().find(|c| c.name == name).map(|c| c.kind)
    }

    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .filter(|c| c.kind == ColumnKind::Tag)
            .map(|c| c.name.as_str())
    }

    /// Checks `incoming` against this schema and returns the grown schema, or the first column
    /// whose type conflicts. Nothing changes on error.
    pub fn merge(&self, table: &str, incoming: &Schema) -> Result<TableSchema, StorageError> {
        let mut merged = self.clone();
        for field in incoming.fields() {
            let kind =
                ColumnKind::from_data_type(field.name(), field.data_type()).ok_or_else(|| {
                    StorageError::UnsupportedType {
                        table: table.into(),
                        column: field.name().clone(),
                        data_type: field.data_type().to_string(),
                    }
                })?;
            match merged.kind_of(field.name()) {
                Some(existing) if existing == kind => {}
                Some(existing) => {
                    return Err(StorageError::TypeConflict {
                        table: table.into(),
                        column: field.name().clone(),
                        existing: existing.describe(),
                        incoming: kind.describe(),
                    });
                }
                None => merged.push(field.name(), kind),
            }
        }
        Ok(merged)
    }

    /// The Arrow schema queries see. Every column but `time` is nullable because columns are
    /// added over time and older rows simply lack them.
    /// The order rows are stored in: every tag in schema order, then time.
    pub fn sort_columns(&self) -> Vec<String> {
        self.tags()
            .map(str::to_string)
            .chain(std::iter::once(TIME_COLUMN.to_string()))
            .collect()
    }

    pub fn arrow_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| Field::new(&c.name, c.kind.data_type(), c.kind != ColumnKind::Time))
            .collect();
        Arc::new(Schema::new(fields))
    }
}

/// Reorders the batch's columns to `schema` and fills columns it lacks with nulls: batches keep
/// the schema they were written with, tables grow.
pub fn align_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, StorageError> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => arrow::compute::cast(c, f.data_type()),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<_, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The batch's `time` column, which every stored batch has, complete and in nanoseconds.
pub(super) fn time_column(
    batch: &RecordBatch,
) -> Result<&arrow::array::TimestampNanosecondArray, StorageError> {
    use arrow::array::Array;
    batch
        .column_by_name(TIME_COLUMN)
        .and_then(|c| {
            c.as_any()
                .downcast_ref::<arrow::array::TimestampNanosecondArray>()
        })
        .filter(|c| c.null_count() == 0)
        .ok_or_else(|| StorageError::Internal {
            message: "batch without a complete nanosecond `time` column".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;

    fn schema(fields: Vec<(&str, DataType)>) -> Schema {
        Schema::new(
            fields
                .into_iter()
                .map(|(n, t)| Field::new(n, t, true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn grows_by_adding_columns() {
        let s = TableSchema::default();
        let s = s
            .merge(
                "cpu",
                &schema(vec![("time", time_type()), ("host", tag_type())]),
            )
            .unwrap();
        let s = s
            .merge("cpu", &schema(vec![("usage", DataType::Float64)]))
            .unwrap();
        let names: Vec<_> = s.columns().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["time", "host", "usage"]);
    }

    #[test]
    fn conflict_names_the_column() {
        let s = TableSchema::default()
            .merge("cpu", &schema(vec![("usage", DataType::Float64)]))
            .unwrap();
        let err = s
            .merge("cpu", &schema(vec![("usage", DataType::Boolean)]))
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("usage") && msg.contains("float field"),
            "{msg}"
        );
    }

    #[test]
    fn declared_tables_start_with_their_columns() {
        let config = TableConfig {
            tags: vec!["host".into()],
            fields: [("load".to_string(), crate::config::DeclaredType::Integer)].into(),
            ..Default::default()
        };
        let s = TableSchema::declared(&config);
        assert_eq!(s.kind_of("host"), Some(ColumnKind::Tag));
        assert_eq!(
            s.kind_of("load"),
            Some(ColumnKind::Field(FieldType::Integer))
        );
    }
}
