//! Server and tenant configuration, the ground floor above `schema`: serde models of
//! `config/opsboard.yaml`, `tenants/<t>/tenant.yaml`, dashboards, panels and alert rules,
//! reading YAML with positions, and problems with `file:line:column`. Checks that need SQL
//! planning or templates live a floor up, in `check/`. Everything downstream receives these
//! already-parsed structs.

mod action;
mod aggregation;
mod alerts;
mod dashboard;
mod duration;
mod loaded;
mod locate;
mod network;
mod oidc;
mod panel;
mod problem;
mod rollup;
mod sections;
mod server;
mod tenant;
mod variables;
mod watch;

pub use action::{
    ActionMethod, ActionRole, ActionType, MAX_RETRIES as MAX_ACTION_RETRIES, PanelAction,
    env_references,
};
pub use aggregation::{AggregationRule, AggregationRules, Bucket};
pub use alerts::{
    AlertFile, AlertRule, ChannelConfig, ChannelType, Condition, EventConfig, EventWatch,
    ExecErrState, NoDataState, ProblemPolicy, RouteConfig, RuleConfig, SUBSCRIBERS, Severity,
    TenantAlerts, Watch, WebhookFormat,
};
pub use dashboard::{
    DashboardConfig, DashboardFile, DashboardPanel, Layout, Placement, Position, check_dashboard,
};
pub use duration::HumanDuration;
pub use loaded::{
    ConfigDirs, DashboardEntry, Functions, LoadedDashboard, LoadedPanel, TenantPanels,
    block_first_line, has_dashboards, tenant_folders, yaml_files,
};
pub use locate::{Locator, Step};
pub use network::IpNetwork;
pub use oidc::{GroupRole, OidcProvider, ROLES as OIDC_ROLES};
pub use panel::{
    AggregateFn, ColumnFormat, Columns, DataSource, Display, DrillDown, PanelAggregation,
    PanelConfig, PanelFile, PanelType, QueryClauses, RowLink, SortOrder, StatusKey, StatusStyle,
    TableColumn, Threshold,
};
pub use problem::{KnownTables, Problem, Report};
pub use rollup::{RollupAggregate, RollupConfig};
pub use sections::{
    AlertsConfig, AttachmentsConfig, AuthConfig, ClusterConfig, HttpConfig, IngestConfig,
    MemoryConfig, MeteringConfig, PanelsConfig, QueryConfig, StorageConfig, WalPlacement,
};
pub use server::ServerConfig;
pub use tenant::{DeclaredType, Quotas, TableConfig, TenantConfig};
pub use variables::{Defaults, RESERVED as RESERVED_PARAMETERS, Variable, mentions};
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

/// Like [`parse_yaml`], but keeps going after a structural error on a one-line `key: value`
/// (an unknown key, a wrong type): that line is set aside and the file parsed again, so one run
/// reports every misspelt key instead of only the first. Stops at errors it cannot step over
/// (syntax, missing fields, errors on a key that has children).
pub(crate) fn parse_yaml_all<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, Vec<ConfigError>> {
    const MAX_ERRORS: usize = 50;
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut errors = vec![];
    // Keys set aside for a bad value: their "missing field" is a consequence, not news.
    let mut set_aside: Vec<String> = vec![];
    loop {
        let mut attempt = lines.join("\n");
        attempt.push('\n');
        let e = match parse_yaml::<T>(path, &attempt) {
            Ok(value) if errors.is_empty() => return Ok(value),
            Ok(_) => return Err(errors),
            Err(e) => e,
        };
        let ConfigError::Parse { line, message, .. } = &e else {
            errors.push(e);
            return Err(errors);
        };
        if let Some(field) = quoted_after(message, "missing field `") {
            if !set_aside.iter().any(|k| k == field) {
                errors.push(e);
            }
            return Err(errors);
        }
        let unknown_key = message.contains("unknown field `");
        let bad_value = [
            "invalid type",
            "invalid value",
            "unknown variant",
            "invalid length",
        ]
        .iter()
        .any(|m| message.contains(m));
        let skip = if unknown_key || bad_value {
            leaf_line(&lines, *line)
        } else {
            None
        };
        errors.push(e);
        match skip {
            Some((index, key)) if errors.len() < MAX_ERRORS => {
                if bad_value {
                    set_aside.push(key);
                }
                // Keep the line count (positions stay true); blank the entry.
                lines[index] = String::new();
            }
            _ => return Err(errors),
        }
    }
}

fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    rest.split('`').next()
}

/// The 0-based index and key of `line` (1-based) when it is a `key: value` entry with no
/// children.
fn leaf_line(lines: &[String], line: usize) -> Option<(usize, String)> {
    let index = line.checked_sub(1)?;
    let text = lines.get(index)?;
    let indent = text.len() - text.trim_start().len();
    // A `- key: value` item start would take its siblings with it.
    if text.trim_start().starts_with("- ") {
        return None;
    }
    let (key, value) = text.trim_start().split_once(':')?;
    let value = value.trim();
    if value.is_empty() || value.starts_with(['|', '>']) {
        return None;
    }
    let next_deeper = lines[index + 1..]
        .iter()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .is_some_and(|l| l.len() - l.trim_start().len() > indent);
    (!next_deeper).then(|| (index, key.trim().trim_matches(['"', '\'']).to_string()))
}

pub(crate) fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}
