//! The panel engine: a panel id and request parameters in, that panel kind's typed answer out.
//! It picks the time bucket (seed 003's rules, overridable per tenant and panel), builds the
//! query with every request value bound as a parameter, shapes the result per panel kind (one
//! folder each, listed in `kinds.rs`) and caches the answer for the panel's refresh interval.

mod alerts;
mod answer;
mod cache;
mod custom_image;
mod custom_template;
mod engine;
mod export;
mod flight;
mod functions;
mod health;
mod kind;
pub mod kinds;
mod kpi;
mod links;
mod newest;
pub mod render_pool;
mod request;
mod shared_scan;
mod sqlgen;
mod table;
mod thumbnails;
mod time_range;
mod timeseries;
pub mod values;
pub mod variables;

pub use crate::config::{AggregationRule, AggregationRules, Bucket};
pub use alerts::{ActiveAlert, TABLE as ALERTS_TABLE};
pub use answer::{Header, Range};
pub use cache::{CacheStats, PanelCache, PanelData};
pub use engine::{PanelEngine, TenantConfigs};
pub use functions::{DataFunction, ImageFunction, Registry};
pub use health::ServiceHealth;
pub use kind::{Endpoint, KindSpec, Source};
pub use kinds::{
    AlertsAnswer, HealthAnswer, ImageAnswer, KpiAnswer, PanelAnswer, PanelKind, TableAnswer,
    TemplateAnswer, TimeseriesAnswer,
};
pub use request::PanelRequest;
pub use table::{ColumnHeading, format_cell};
pub use thumbnails::thumbnail;
pub use time_range::{RequestedRange, parse_instant};
pub use timeseries::{Point, Series};

use std::path::PathBuf;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;

use crate::clock::Timestamp;
use crate::config::{LoadedPanel, TenantPanels};
use crate::query::{Params, QueryEngine, QueryError};
use crate::storage::{StorageError, TenantStore};

/// A request parameter the panel engine cannot use; always names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{param}`: {message}")]
pub struct ParamError {
    pub param: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PanelError {
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error("tenant `{0}` has no dashboards configured")]
    NoConfig(String),
    #[error("no panel `{panel}` in tenant `{tenant}`")]
    UnknownPanel { tenant: String, panel: String },
    #[error("no dashboard `{dashboard}` in tenant `{tenant}`")]
    UnknownDashboard { tenant: String, dashboard: String },
    #[error("panel `{panel}`: {source}")]
    Query {
        panel: String,
        #[source]
        source: QueryError,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The panel's query returned columns the panel type cannot use (a `sql:` panel's fault).
    #[error("panel `{panel}`: {message}")]
    Shape { panel: String, message: String },
    #[error("panel `{panel}` template error at {file}:{line}: {message}")]
    Template {
        panel: String,
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("panel `{panel}`: {message}")]
    Function { panel: String, message: String },
    #[error(
        "panel `{panel}`: {found} series, more than panels.max_series ({limit}); narrow it with \
         `?series=`, a `where:` or a coarser grouping"
    )]
    TooManySeries {
        panel: String,
        found: usize,
        limit: usize,
    },
    #[error("panel `{panel}` is a {kind} panel; it has no rows to export")]
    NotExportable { panel: String, kind: &'static str },
    /// A panel whose `type:` no kind has; the configuration checks refuse it before this.
    #[error("panel `{panel}`: no panel type `{kind}`")]
    UnknownKind { panel: String, kind: String },
    /// A dashboard variable's value the request may not pick (`var-<name>`).
    #[error("variable `{variable}`: {message}")]
    Variable { variable: String, message: String },
    #[error("thumbnail of attachment {id}: {message}")]
    Thumbnail { id: String, message: String },
    /// The attachment says it is a picture but cannot be read as one (or is too large to).
    #[error("attachment {id}: {source}")]
    Picture {
        id: String,
        #[source]
        source: crate::render::RenderError,
    },
}

/// Everything a panel type needs to run one request.
pub struct Run<'a> {
    pub engine: &'a QueryEngine,
    pub store: &'a Arc<TenantStore>,
    pub tenant: &'a TenantPanels,
    pub panel: &'a LoadedPanel,
    pub request: &'a PanelRequest,
    pub functions: &'a Registry,
    pub range: RequestedRange,
    pub now_ns: i64,
    pub raw_limit: usize,
    /// Most series one answer may hold (`panels.max_series`).
    pub max_series: usize,
    /// The dashboard variables the panel reads, bound (`$name`).
    pub vars: Params,
    /// Queries of several panels over the same rows, gathered into one.
    pub scans: &'a shared_scan::SharedScans,
}

impl Run<'_> {
    /// Runs `sql` with `params`; errors name the panel.
    pub async fn rows(&self, sql: &str, params: &Params) -> Result<Vec<RecordBatch>, PanelError> {
        self.engine
            .collect_with_params(self.store, sql, params)
            .await
            .map_err(|source| PanelError::Query {
                panel: self.panel.id.clone(),
                source,
            })
    }

    /// One aggregate's rows (`keys…, value`), from a query shared with the panels asking for
    /// other aggregates of the same rows meanwhile.
    pub async fn aggregated(
        &self,
        query: &shared_scan::Aggregated,
        params: &Params,
    ) -> Result<Vec<RecordBatch>, PanelError> {
        self.scans.rows(self, query, params).await
    }

    /// Runs `sql` with `params`, its batches as they come (for answers folded as they stream).
    pub async fn stream(
        &self,
        sql: &str,
        params: &Params,
    ) -> Result<crate::query::BatchStream, PanelError> {
        let to_panel_error = |source| PanelError::Query {
            panel: self.panel.id.clone(),
            source,
        };
        self.engine
            .execute_with_params(self.store, sql, params)
            .await
            .map(|output| output.stream)
            .map_err(to_panel_error)
    }

    /// The panel's kind.
    pub fn kind(&self) -> Result<&'static dyn PanelKind, PanelError> {
        kinds::kind(&self.panel.config.kind).ok_or_else(|| PanelError::UnknownKind {
            panel: self.panel.id.clone(),
            kind: self.panel.config.kind.to_string(),
        })
    }

    pub fn shape_error(&self, message: impl Into<String>) -> PanelError {
        PanelError::Shape {
            panel: self.panel.id.clone(),
            message: message.into(),
        }
    }

    /// The fields every panel answer starts with.
    pub fn header(&self) -> Header {
        let config = &self.panel.config;
        Header {
            panel: self.panel.id.clone(),
            title: variables::substitute(&config.title, &variables::shown(&self.vars)),
            description: config.description.clone(),
            range: Range {
                from: Timestamp::from_ns(self.range.from_ns),
                to: Timestamp::from_ns(self.range.to_ns),
            },
        }
    }
}
