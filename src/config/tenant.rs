//! `tenants/<tenant>/tenant.yaml`: a tenant's display name, timezone and the tables it declares
//! up front (tags, field types, retention). Undeclared tables are created by their first write.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{
    AggregationRules, ConfigError, HumanDuration, Locator, RollupConfig, Step, parse_yaml,
    read_file,
};
use crate::schema::FieldType;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantConfig {
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub tables: BTreeMap<String, TableConfig>,
    /// Replaces the server's aggregation rules for this tenant's panels.
    pub aggregation: Option<AggregationRules>,
    /// Limits on what the tenant may use; none set, none applies.
    pub quotas: Quotas,
}

/// `quotas:` in tenant.yaml. Over one, writes (rows, storage) or queries are answered 429 with
/// `Retry-After`; at 80 % the tenant's alert routes get a `QuotaWarning`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// Rows written per UTC day, across the nodes.
    pub rows_per_day: Option<u64>,
    /// Bytes kept: Parquet files, WAL and attachments.
    pub storage_bytes: Option<u64>,
    /// Queries callers ask for (SQL API, panel data, renders and exports) per minute, per node.
    pub queries_per_minute: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TableConfig {
    /// Columns that identify a series; stored dictionary-encoded, sorted on first.
    pub tags: Vec<String>,
    /// Declared field types; a write with another type for these columns is rejected.
    pub fields: BTreeMap<String, DeclaredType>,
    /// How long rows are kept; overrides the server default.
    pub retention: Option<HumanDuration>,
    /// Pre-aggregated copies kept at each flush (see [`RollupConfig`]); queries read the
    /// smallest one that answers them.
    pub rollups: Vec<RollupConfig>,
}

/// A field's declared type: how it is stored, or `attachment` — text that holds the id of a
/// file uploaded to the tenant, checked when rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeclaredType {
    Float,
    Integer,
    UInteger,
    Boolean,
    String,
    Attachment,
}

impl DeclaredType {
    /// How the column is stored.
    pub fn stored(self) -> FieldType {
        match self {
            Self::Float => FieldType::Float,
            Self::Integer => FieldType::Integer,
            Self::UInteger => FieldType::UInteger,
            Self::Boolean => FieldType::Boolean,
            Self::String | Self::Attachment => FieldType::String,
        }
    }
}

impl TableConfig {
    /// The declared fields as stored.
    pub fn field_types(&self) -> BTreeMap<String, FieldType> {
        self.fields
            .iter()
            .map(|(name, t)| (name.clone(), t.stored()))
            .collect()
    }

    /// The fields that hold attachment ids.
    pub fn attachment_columns(&self) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(_, t)| **t == DeclaredType::Attachment)
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

impl TenantConfig {
    /// Reads `dir/tenant.yaml`; a tenant folder without one is a tenant with no declarations.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let path = dir.join("tenant.yaml");
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = read_file(&path)?;
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let config: Self = parse_yaml(&path, &text)?;
        config.validate(&path, &text)?;
        Ok(config)
    }

    fn validate(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let quotas = [
            ("rows_per_day", self.quotas.rows_per_day),
            ("storage_bytes", self.quotas.storage_bytes),
            ("queries_per_minute", self.quotas.queries_per_minute),
        ];
        if let Some((name, _)) = quotas.iter().find(|(_, v)| *v == Some(0)) {
            let (line, column) =
                Locator::new(text).locate(&[Step::from("quotas"), Step::from(*name)]);
            return Err(ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: format!("quotas.{name} must be at least 1 (leave it out for no limit)"),
            });
        }
        if let Some(problem) = self.aggregation.iter().flat_map(|a| a.problems()).next() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: problem,
            });
        }
        for (table, t) in &self.tables {
            for tag in &t.tags {
                if tag == "time" || t.fields.contains_key(tag) {
                    return Err(ConfigError::Invalid {
                        path: path.to_path_buf(),
                        message: format!(
                            "table {table:?}: {tag:?} cannot be a tag (it is `time` or also a field)"
                        ),
                    });
                }
            }
            if let Some((steps, message)) = rollup_problems(table, t).into_iter().next() {
                let mut at = vec![Step::from("tables"), Step::from(table.as_str())];
                at.extend(steps);
                let (line, column) = Locator::new(text).locate(&at);
                return Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    line,
                    column,
                    message,
                });
            }
            if t.fields.contains_key("time") {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: format!("table {table:?}: `time` is implicit and cannot be a field"),
                });
            }
        }
        Ok(())
    }
}

/// Each declaration's problems (steps from the table's key), then any interval two declarations
/// of the same tags and fields both keep.
fn rollup_problems(table: &str, t: &TableConfig) -> Vec<(Vec<Step>, String)> {
    let mut problems = vec![];
    let types = t.field_types();
    for (i, rollup) in t.rollups.iter().enumerate() {
        let at = format!("tables.{table}.rollups[{i}]");
        for (steps, message) in rollup.problems(&at, &t.tags, &types, t.retention) {
            let mut path = vec![Step::from("rollups"), Step::from(i)];
            path.extend(steps);
            problems.push((path, message));
        }
        let same = |other: &RollupConfig| {
            let mut a = other.group_by.clone();
            let mut b = rollup.group_by.clone();
            a.sort();
            b.sort();
            a == b && other.fields_of(&types) == rollup.fields_of(&types)
        };
        for (j, interval) in rollup.intervals.iter().enumerate() {
            if t.rollups[..i]
                .iter()
                .any(|earlier| same(earlier) && earlier.intervals.contains(interval))
            {
                problems.push((
                    vec!["rollups".into(), i.into(), "intervals".into(), j.into()],
                    format!("{at}.intervals[{j}]: an earlier rollup of the same tags and fields keeps this interval"),
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_demo_tenant_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tenants/demo");
        let config = TenantConfig::load(&dir).unwrap();
        assert!(config.tables.contains_key("cpu"));
    }

    #[test]
    fn quotas_parse_and_a_zero_quota_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tenant.yaml");
        std::fs::write(
            &file,
            "quotas:\n  rows_per_day: 1000\n  queries_per_minute: 60\n",
        )
        .unwrap();
        let quotas = TenantConfig::load(dir.path()).unwrap().quotas;
        assert_eq!(quotas.rows_per_day, Some(1000));
        assert_eq!(quotas.queries_per_minute, Some(60));
        assert_eq!(quotas.storage_bytes, None);
        std::fs::write(
            &file,
            "name: Acme\nquotas:\n  rows_per_day: 10\n  storage_bytes: 0\n",
        )
        .unwrap();
        let err = TenantConfig::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("tenant.yaml:4:"), "{err}");
        assert!(
            err.contains("quotas.storage_bytes must be at least 1"),
            "{err}"
        );
        std::fs::write(&file, "quotas:\n  rows_per_hour: 10\n").unwrap();
        let err = TenantConfig::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("rows_per_hour"), "{err}");
    }

    #[test]
    fn broken_aggregation_override_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("tenant.yaml"),
            "aggregation:\n  rules:\n    - {up_to: 1h, bucket: raw}\n",
        )
        .unwrap();
        let err = TenantConfig::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("tenant.yaml: aggregation.rules[0]: the last rule must omit"),
            "{err}"
        );
    }

    #[test]
    fn a_rollup_interval_kept_twice_is_located() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("tenant.yaml"),
            "tables:\n  cpu:\n    tags: [host]\n    fields: {usage: float}\n    rollups:\n      - {intervals: [1m], group_by: [host]}\n      - intervals: [1h, 1m]\n        group_by: [host]\n",
        )
        .unwrap();
        let err = TenantConfig::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("tenant.yaml:7:")
                && err.contains("tables.cpu.rollups[1].intervals[1]: an earlier rollup"),
            "{err}"
        );
    }

    #[test]
    fn wrong_field_type_is_located() {
        let err = parse_yaml::<TenantConfig>(
            Path::new("tenant.yaml"),
            "tables:\n  cpu:\n    fields:\n      usage: decimal\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("tenant.yaml:4:14: "), "{err}");
    }
}
