//! The registry of panel kinds: the one place that lists them. Each kind's folder holds its
//! spec (name, size, the data and keys it takes), its answer type, its run (query and
//! shaping), its export query and its HTML fragment; adding a kind means a folder and a line
//! in each list here.

use serde::{Deserialize, Serialize};

use super::answer::Header;
use async_trait::async_trait;

use super::kind::KindSpec;
use super::{PanelError, Run};
use crate::config::PanelType;
use crate::query::Params;
use crate::render::{FragmentOptions, RenderError};

pub use super::alerts::AlertsAnswer;
pub use super::custom_image::ImageAnswer;
pub use super::custom_template::TemplateAnswer;
pub use super::health::HealthAnswer;
pub use super::kpi::KpiAnswer;
pub use super::table::TableAnswer;
pub use super::timeseries::TimeseriesAnswer;

/// A panel's answer, typed per kind. Serialised it is the API's JSON (`type` names the kind);
/// pages, alerts and charts read the typed value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PanelAnswer {
    Timeseries(TimeseriesAnswer),
    Kpi(KpiAnswer),
    HealthStatus(HealthAnswer),
    Table(TableAnswer),
    CustomImage(ImageAnswer),
    CustomTemplate(TemplateAnswer),
    Alerts(AlertsAnswer),
}

/// The boundary of a panel kind: it describes itself, runs a request into its typed answer
/// and names the rows an export streams; its answer draws its own HTML fragment.
#[async_trait]
pub trait PanelKind: Send + Sync {
    fn spec(&self) -> &'static KindSpec;

    /// The panel's answer for one request.
    async fn run(&self, run: &Run<'_>) -> Result<PanelAnswer, PanelError>;

    /// The query (and its parameters) whose rows an export streams, uncapped. Kinds without
    /// rows (images) keep the default refusal.
    async fn export_query(&self, run: &Run<'_>) -> Result<(String, Params), PanelError> {
        Err(PanelError::NotExportable {
            panel: run.panel.id.clone(),
            kind: self.spec().name,
        })
    }
}

/// Every kind, in the order error messages list them.
pub const ALL: [&dyn PanelKind; 7] = [
    &super::timeseries::Timeseries,
    &super::kpi::Kpi,
    &super::health::Health,
    &super::table::Table,
    &super::custom_image::CustomImage,
    &super::custom_template::CustomTemplate,
    &super::alerts::Alerts,
];

/// The component that runs panels of `kind`; none for a type no kind has (the configuration
/// checks refuse those, so a loaded panel always has its kind).
pub fn kind(kind: &PanelType) -> Option<&'static dyn PanelKind> {
    ALL.into_iter().find(|k| k.spec().name == kind.name())
}

/// What is known of `kind` before any request.
pub fn spec(kind: &PanelType) -> Option<&'static KindSpec> {
    self::kind(kind).map(|k| k.spec())
}

/// The YAML names of every kind: `` `timeseries`, `kpi`, … ``.
pub fn names() -> String {
    ALL.iter()
        .map(|k| format!("`{}`", k.spec().name))
        .collect::<Vec<_>>()
        .join(", ")
}

impl PanelAnswer {
    pub fn header(&self) -> &Header {
        match self {
            Self::Timeseries(a) => &a.header,
            Self::Kpi(a) => &a.header,
            Self::HealthStatus(a) => &a.header,
            Self::Table(a) => &a.header,
            Self::CustomImage(a) => &a.header,
            Self::CustomTemplate(a) => &a.header,
            Self::Alerts(a) => &a.header,
        }
    }

    /// The panel's HTML on a page (its box and title are the page's).
    pub fn fragment(&self, options: &FragmentOptions) -> Result<String, RenderError> {
        match self {
            Self::Timeseries(a) => a.fragment(options),
            Self::Kpi(a) => a.fragment(),
            Self::HealthStatus(a) => a.fragment(options),
            Self::Table(a) => a.fragment(options),
            Self::CustomImage(a) => a.fragment(),
            Self::CustomTemplate(a) => a.fragment(),
            Self::Alerts(a) => a.fragment(options),
        }
    }
}
