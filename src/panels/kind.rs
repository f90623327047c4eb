//! The boundary of a panel kind: what the engine asks of each one. A kind runs a request into
//! its typed answer and names the rows an export streams; its answer draws its own HTML
//! fragment (see [`super::kinds::PanelAnswer::fragment`]). Kinds are listed in one registry,
//! `kinds.rs`; everything else about a kind lives in its own folder.

use async_trait::async_trait;

use super::kinds::PanelAnswer;
use super::{PanelError, Run};
use crate::query::Params;

#[async_trait]
pub trait PanelKind: Send + Sync {
    /// The panel's answer for one request.
    async fn run(&self, run: &Run<'_>) -> Result<PanelAnswer, PanelError>;

    /// The query (and its parameters) whose rows an export streams, uncapped. Kinds without
    /// rows (images) keep the default refusal.
    async fn export_query(&self, run: &Run<'_>) -> Result<(String, Params), PanelError> {
        Err(PanelError::NotExportable {
            panel: run.panel.id.clone(),
            kind: run.panel.config.kind.name(),
        })
    }
}
