//! The ground floor every layer may use and that uses no other: what a column of a table is
//! (the `time` column, tags, typed fields) and the Arrow type each kind is stored as. Config
//! declares these kinds in tenant.yaml, ingest and storage check writes against them, query
//! and the configuration checks plan SQL with them.

use arrow::datatypes::{DataType, TimeUnit};
use serde::{Deserialize, Serialize};

pub const TIME_COLUMN: &str = "time";

/// Field value types a table can hold; in tenant.yaml `float`, `integer`, `uinteger`,
/// `boolean`, `string`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Float,
    Integer,
    UInteger,
    Boolean,
    String,
}

/// What a column is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "type")]
pub enum ColumnKind {
    Time,
    Tag,
    Field(FieldType),
}

impl ColumnKind {
    pub fn data_type(self) -> DataType {
        match self {
            ColumnKind::Time => time_type(),
            ColumnKind::Tag => tag_type(),
            ColumnKind::Field(FieldType::Float) => DataType::Float64,
            ColumnKind::Field(FieldType::Integer) => DataType::Int64,
            ColumnKind::Field(FieldType::UInteger) => DataType::UInt64,
            ColumnKind::Field(FieldType::Boolean) => DataType::Boolean,
            ColumnKind::Field(FieldType::String) => DataType::Utf8,
        }
    }

    /// Maps an Arrow type back to a column kind; `None` for types a table cannot hold.
    pub fn from_data_type(name: &str, data_type: &DataType) -> Option<Self> {
        Some(match data_type {
            DataType::Timestamp(TimeUnit::Nanosecond, _) if name == TIME_COLUMN => ColumnKind::Time,
            DataType::Dictionary(_, value) if value.as_ref() == &DataType::Utf8 => ColumnKind::Tag,
            DataType::Float64 => ColumnKind::Field(FieldType::Float),
            DataType::Int64 => ColumnKind::Field(FieldType::Integer),
            DataType::UInt64 => ColumnKind::Field(FieldType::UInteger),
            DataType::Boolean => ColumnKind::Field(FieldType::Boolean),
            DataType::Utf8 => ColumnKind::Field(FieldType::String),
            _ => return None,
        })
    }

    /// Numbers (and booleans, as 0/1) that a chart or threshold can use.
    pub fn is_numeric(self) -> bool {
        matches!(self, ColumnKind::Field(f) if f != FieldType::String)
    }

    pub fn describe(self) -> &'static str {
        match self {
            ColumnKind::Time => "time",
            ColumnKind::Tag => "tag",
            ColumnKind::Field(FieldType::Float) => "float field",
            ColumnKind::Field(FieldType::Integer) => "integer field",
            ColumnKind::Field(FieldType::UInteger) => "uinteger field",
            ColumnKind::Field(FieldType::Boolean) => "boolean field",
            ColumnKind::Field(FieldType::String) => "string field",
        }
    }
}

pub fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

pub fn tag_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// Tables the server writes itself (every alert state change, every panel action's run, the
/// hourly usage); requests and the CLI may read them but never write or reshape them.
pub const SYSTEM_TABLES: [&str; 3] = ["alerts", "actions", "opsboard_usage"];

/// Whether `name` may name a tenant: tenant names become folder names and object-store
/// prefixes, so lowercase letters, digits, `_` and `-`, at most 63, starting alphanumeric.
pub fn is_valid_tenant_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_arrow_type() {
        let fields = [
            FieldType::Float,
            FieldType::Integer,
            FieldType::UInteger,
            FieldType::Boolean,
            FieldType::String,
        ];
        let kinds = [ColumnKind::Time, ColumnKind::Tag]
            .into_iter()
            .chain(fields.into_iter().map(ColumnKind::Field));
        for kind in kinds {
            let name = if kind == ColumnKind::Time {
                TIME_COLUMN
            } else {
                "x"
            };
            assert_eq!(
                ColumnKind::from_data_type(name, &kind.data_type()),
                Some(kind)
            );
        }
        assert_eq!(
            serde_yaml::from_str::<FieldType>("uinteger").unwrap(),
            FieldType::UInteger
        );
        assert!(!ColumnKind::Field(FieldType::String).is_numeric());
        assert!(ColumnKind::Field(FieldType::Boolean).is_numeric());
    }
}
