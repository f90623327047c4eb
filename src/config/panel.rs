//! `panels/<id>.yaml` and `tenants/<t>/panels/<id>.yaml`: seed 003's panel schema (type, title,
//! description, data_source, query, display, refresh_interval, drill_down), extended with `sql`,
//! `aggregation`, `endpoint`/`parameters` for registered Rust functions, and `template`.
//! One struct carries every panel type's keys; the validation pass reports a key that does not
//! apply to the panel's type, with its position.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::{AggregationRule, HumanDuration};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelFile {
    pub panel: PanelConfig,
}

/// A panel's `type:` as written. Which types exist is the panel engine's registry
/// (`panels::kinds`); the checks report an unknown one with its position.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(transparent)]
pub struct PanelType(pub String);

impl PanelType {
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PanelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelConfig {
    #[serde(rename = "type")]
    pub kind: PanelType,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Structured source: a table, its columns by role, and optional filter clauses.
    #[serde(default)]
    pub data_source: Option<DataSource>,
    /// Seed 003 also puts `query:` beside `data_source`; both places are accepted.
    #[serde(default)]
    pub query: Option<QueryClauses>,
    /// Free SQL instead of `data_source`, with `$from`, `$to`, `$bucket` bound by the engine.
    #[serde(default)]
    pub sql: Option<String>,
    #[serde(default)]
    pub display: Display,
    #[serde(default)]
    pub refresh_interval: Option<HumanDuration>,
    #[serde(default)]
    pub drill_down: Option<DrillDown>,
    #[serde(default)]
    pub aggregation: Option<PanelAggregation>,
    /// Health: a service whose newest row is older than this shows as unknown.
    #[serde(default)]
    pub stale_after: Option<HumanDuration>,
    /// custom_image / custom_template: the registered Rust function, by name
    /// (`cpu_heatmap`, or seed 003's `/api/v1/custom/cpu_heatmap`).
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// custom_template: a minijinja template, HTML auto-escaped.
    #[serde(default)]
    pub template: Option<String>,
    /// Buttons that call out: per row of a table, per panel otherwise.
    #[serde(default)]
    pub actions: Vec<super::PanelAction>,
}

impl PanelConfig {
    /// The function name `endpoint` names, without seed 003's URL prefix.
    pub fn endpoint_name(&self) -> Option<&str> {
        self.endpoint
            .as_deref()
            .map(|e| e.rsplit('/').next().unwrap_or(e))
    }

    /// Filter clauses from `data_source.query` or the panel's `query`.
    pub fn clauses(&self) -> Option<&QueryClauses> {
        self.data_source
            .as_ref()
            .and_then(|d| d.query.as_ref())
            .or(self.query.as_ref())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSource {
    pub table: String,
    #[serde(default)]
    pub columns: Option<Columns>,
    #[serde(default)]
    pub query: Option<QueryClauses>,
}

/// `columns:` is a map of role → column for most types, and a list for tables.
#[derive(Debug, Clone)]
pub enum Columns {
    Roles(BTreeMap<String, String>),
    List(Vec<TableColumn>),
}

impl Columns {
    pub fn role(&self, role: &str) -> Option<&str> {
        match self {
            Columns::Roles(map) => map.get(role).map(String::as_str),
            Columns::List(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Columns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ColumnsVisitor;
        impl<'de> Visitor<'de> for ColumnsVisitor {
            type Value = Columns;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of role: column, or a list of columns")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Columns, A::Error> {
                Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(Columns::Roles)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Columns, A::Error> {
                Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(Columns::List)
            }
        }
        d.deserialize_any(ColumnsVisitor)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableColumn {
    pub name: String,
    #[serde(default)]
    pub display: Option<String>,
    #[serde(default)]
    pub format: Option<ColumnFormat>,
    /// Each cell links to another dashboard of the tenant with variables set from its row.
    #[serde(default)]
    pub link: Option<RowLink>,
}

/// `link: {dashboard: vm, vars: {vm: "{{ row.vm }}"}}`: the target dashboard and its variables,
/// each a template over the row (`row.<column>`). The link keeps the time range.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RowLink {
    pub dashboard: String,
    #[serde(default)]
    pub vars: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnFormat {
    Datetime,
    Number,
    Percent,
    Bytes,
    Duration,
}

/// Operator-written filter clauses. A bare string is seed 003's KPI shorthand for `where`.
#[derive(Debug, Clone, Default)]
pub struct QueryClauses {
    pub where_clause: Option<String>,
    pub order_by: Option<String>,
    pub limit: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClausesMap {
    #[serde(default, rename = "where")]
    where_clause: Option<String>,
    #[serde(default)]
    order_by: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
}

impl<'de> Deserialize<'de> for QueryClauses {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ClausesVisitor;
        impl<'de> Visitor<'de> for ClausesVisitor {
            type Value = QueryClauses;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a filter expression, or a map with where / order_by / limit")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<QueryClauses, E> {
                Ok(QueryClauses {
                    where_clause: Some(v.to_string()),
                    ..QueryClauses::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<QueryClauses, A::Error> {
                let m = ClausesMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(QueryClauses {
                    where_clause: m.where_clause,
                    order_by: m.order_by,
                    limit: m.limit,
                })
            }
        }
        d.deserialize_any(ClausesVisitor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AggregateFn {
    #[default]
    Avg,
    Min,
    Max,
    Sum,
    Count,
    Last,
    P50,
    P95,
    P99,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelAggregation {
    #[serde(default)]
    pub function: Option<AggregateFn>,
    /// Replaces the tenant's (or server's) bucket rules for this panel.
    #[serde(default)]
    pub rules: Option<Vec<AggregationRule>>,
    #[serde(default)]
    pub max_points_per_series: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DrillDown {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub show_table: bool,
    #[serde(default)]
    pub disable_aggregation: bool,
}

/// Every type's display keys; the validator rejects keys that do not apply to the type.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Display {
    // timeseries
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y_axis_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y_axis_range: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_color: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub colors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_area: Option<bool>,
    // kpi
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimals: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<Threshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_delta: Option<bool>,
    // health_status and timeseries: each entry (`row.name`, `row.status`) or series
    // (`row.series`) links to an entity dashboard
    // (boxed: `Display` travels inside every panel answer)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Box<RowLink>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub status_mapping: BTreeMap<StatusKey, StatusStyle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_color: Option<String>,
    // table
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sortable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_sort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_sort_order: Option<SortOrder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagination: Option<u32>,
    /// Rows as a grid of their attachments' thumbnails, the other columns as captions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gallery: Option<bool>,
    // custom_image
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub value: f64,
    pub color: String,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StatusStyle {
    pub color: String,
    pub label: String,
}

/// A `status_mapping` key: YAML writes `0:` or `"OK":`; both compare as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct StatusKey(pub String);

impl<'de> Deserialize<'de> for StatusKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = StatusKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status value (number, text or boolean)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StatusKey, E> {
                Ok(StatusKey(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StatusKey, E> {
                Ok(StatusKey(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StatusKey, E> {
                Ok(StatusKey(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<StatusKey, E> {
                Ok(StatusKey(v.to_string()))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    #[default]
    Asc,
    Desc,
}
