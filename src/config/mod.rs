//! Server and tenant configuration: serde models of `config/opsboard.yaml`,
//! `tenants/<t>/tenant.yaml`, dashboards and panels, their loading and validation. Everything
//! downstream (storage, query, panels, http) receives these already-parsed structs; a YAML
//! mistake is reported here with `file:line:column`.

mod aggregation;
mod check;
mod dashboard;
mod duration;
mod load;
mod locate;
mod panel;
mod server;
mod sql_check;
mod tenant;
mod validate;
mod watch;

pub use aggregation::{AggregationRule, AggregationRules, Bucket};
pub use check::validate_paths;
pub use dashboard::{DashboardConfig, DashboardPanel, Layout, Placement, Position};
pub use duration::HumanDuration;
pub use load::{
    ConfigDirs, Functions, LoadedDashboard, LoadedPanel, TenantPanels, check_shared_panels,
    load_tenant, tenant_names, yaml_files,
};
pub use locate::{Locator, Step};
pub use panel::{
    AggregateFn, ColumnFormat, Columns, DataSource, Display, DrillDown, PanelAggregation,
    PanelConfig, PanelType, QueryClauses, SortOrder, StatusKey, StatusStyle, TableColumn,
    Threshold,
};
pub use server::{IngestConfig, PanelsConfig, QueryConfig, ServerConfig, StorageConfig};
pub use sql_check::{parse_order_by, parse_where};
pub use tenant::{FieldTypeName, TableConfig, TenantConfig};
pub use validate::{ColumnType, KnownTables, Problem, SQL_PARAMETERS};
pub use watch::fingerprint;

use std::path::{Path, PathBuf};

/// A configuration problem, always naming the file (and the position when serde knows it).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Parses one YAML file into `T`, turning serde's error into `file:line:column: message`.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        // serde_yaml appends " at line N column M" to its message; the prefix already says it.
        let message = e.to_string();
        let message = match message.find(" at line ") {
            Some(at) => message[..at].to_string(),
            None => message,
        };
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    })
}

pub(crate) fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}
