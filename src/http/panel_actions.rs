//! What a panel fragment shows of the panel's actions for the caller: per-row buttons for a
//! table's keyed actions, and under the fragment the panel's own buttons and newest runs.

use super::AppState;
use super::views::{FragmentAt, path_segment, with_query};
use crate::actions::{key_columns, may_run};
use crate::auth::Need;
use crate::config::TenantPanels;
use crate::render::{ActionButton, RowAction, RunLine, actions_strip};

/// What a fragment shows of its panel's actions for this caller.
pub(super) struct FragmentActions {
    /// Per-row buttons (a table's actions with a key).
    pub rows: Vec<RowAction>,
    /// The panel's own buttons and its newest runs, drawn under the fragment.
    pub strip: String,
}

/// Runs listed under a panel.
const RUNS_SHOWN: usize = 5;

/// The buttons this caller may use (none without the `run` need; admin-only actions only for
/// the tenant's admins) and the panel's newest runs.
pub(super) fn for_fragment(
    state: &AppState,
    config: &TenantPanels,
    at: &FragmentAt<'_>,
) -> FragmentActions {
    let Some(panel) = config.panels.get(at.panel) else {
        return FragmentActions {
            rows: vec![],
            strip: String::new(),
        };
    };
    let principal = at.caller.principal.as_deref();
    let may = principal.is_some_and(|p| p.allows(at.tenant, Need::Run));
    let is_admin = principal.is_some_and(|p| p.allows(at.tenant, Need::Manage));
    let mut page: Vec<(String, String)> = vec![("panel".into(), at.panel.to_string())];
    page.extend(
        at.query
            .iter()
            .filter(|(k, _)| k == "from" || k == "to" || k.starts_with("var-"))
            .cloned(),
    );
    if let Some(dashboard) = at.dashboard.filter(|d| !d.is_empty()) {
        page.push(("dashboard".into(), dashboard.to_string()));
    }
    let (mut rows, mut buttons) = (vec![], vec![]);
    for action in panel
        .config
        .actions
        .iter()
        .filter(|a| may && may_run(a, is_admin))
    {
        let url = with_query(
            &format!("/t/{}/actions/{}", at.tenant, path_segment(&action.id)),
            &page,
        );
        let key = key_columns(action);
        if key.is_empty() {
            buttons.push(ActionButton {
                label: action.label.clone(),
                url,
            });
        } else {
            rows.push(RowAction {
                label: action.label.clone(),
                url,
                key,
            });
        }
    }
    let now_ms = at.now / 1_000_000;
    let runs: Vec<RunLine> = state
        .actions
        .recent(at.tenant, at.panel, RUNS_SHOWN)
        .into_iter()
        .map(|r| RunLine {
            url: format!("/t/{}/actions/runs/{}", at.tenant, r.run),
            label: r.label,
            target: r.target,
            status: r.status.as_str(),
            error: r.error,
            ago: crate::render::ago(r.started_at, now_ms),
        })
        .collect();
    let strip = actions_strip(&buttons, &runs)
        .unwrap_or_else(|e| state.pages.error_fragment(&e.to_string()));
    FragmentActions { rows, strip }
}
