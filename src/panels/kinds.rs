//! The registry of panel kinds: the one place that lists them. Each kind's folder holds its
//! answer type, its run (query and shaping), its export query and its HTML fragment; adding a
//! kind means a folder and three lines here.

use serde::{Deserialize, Serialize};

use super::answer::Header;
use super::kind::PanelKind;
use crate::config::PanelType;
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

/// The component that runs panels of `kind`.
pub fn kind(kind: PanelType) -> &'static dyn PanelKind {
    match kind {
        PanelType::Timeseries => &super::timeseries::Timeseries,
        PanelType::Kpi => &super::kpi::Kpi,
        PanelType::HealthStatus => &super::health::Health,
        PanelType::Table => &super::table::Table,
        PanelType::CustomImage => &super::custom_image::CustomImage,
        PanelType::CustomTemplate => &super::custom_template::CustomTemplate,
        PanelType::Alerts => &super::alerts::Alerts,
    }
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
