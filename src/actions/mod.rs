//! Panel actions: a caller asks to run a panel's action on a row; the server finds the row among
//! those the panel shows (by the action's key columns — the client's copy is never used),
//! renders the call from it, and runs the call in the background, one run per target at a
//! time. Every run ends in the tenant's `actions` table and the audit log.

mod record;
mod runs;
mod send;

pub use runs::{Run, RunStatus};

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::auth::{Actor, Auth};
use crate::config::{ActionMethod, ActionRole, IpNetwork, PanelAction};
use crate::panels::{PanelEngine, PanelError, PanelRequest};
use crate::query::{QueryEngine, QueryError};
use crate::render::{render_action_text, row_fields};
use crate::storage::{StorageError, Store};
use runs::Runs;
use send::Call;

/// The tenant table every run is appended to.
pub const TABLE: &str = crate::schema::SYSTEM_TABLES[1];

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("panel `{panel}` has no action `{action}`")]
    UnknownAction { panel: String, action: String },
    #[error("action `{0}` is for the tenant's admins")]
    AdminOnly(String),
    #[error("the row needs `{column}`, a key column of action `{action}`")]
    MissingKey { action: String, column: String },
    #[error("panel `{panel}` shows no row with {target}")]
    NoSuchRow { panel: String, target: String },
    #[error("action `{action}` is already running on {target} (run {run})")]
    Busy {
        action: String,
        target: String,
        run: String,
    },
    #[error("action `{action}`, {template}: {message}")]
    Render {
        action: String,
        template: &'static str,
        message: String,
    },
    #[error("no run `{0}`")]
    UnknownRun(String),
    #[error(transparent)]
    Panel(#[from] PanelError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Ingest(#[from] crate::ingest::IngestError),
}

/// Who asks: the audit actor, the name templates see as `user`, and whether the caller may run
/// admin-only actions.
#[derive(Debug, Clone)]
pub struct Who {
    pub actor: Actor,
    pub user: String,
    pub is_admin: bool,
}

/// What is asked: an action of a panel, on the row whose key the client gives, under the
/// page's range and variables.
pub struct Ask<'a> {
    pub tenant: &'a str,
    pub panel: &'a str,
    pub action: &'a str,
    pub request: &'a PanelRequest,
    pub row: &'a Map<String, Value>,
}

/// A run ready to start: the row the server found and the call rendered from it.
pub struct Prepared {
    pub run: String,
    pub tenant: String,
    pub panel: String,
    pub action: PanelAction,
    /// The row as the panel shows it (empty for a panel's action).
    pub row: Map<String, Value>,
    pub key: Vec<(String, Option<String>)>,
    pub target: String,
    pub confirm: Option<String>,
    call: Call,
}

pub struct Actions {
    panels: Arc<PanelEngine>,
    engine: Arc<QueryEngine>,
    store: Arc<Store>,
    auth: Arc<Auth>,
    http: reqwest::Client,
    allowed_targets: Arc<Vec<IpNetwork>>,
    variables: Arc<send::ServerVariables>,
    runs: Arc<Runs>,
}

/// The columns that pick an action's row: `key:`, else those its URL reads (what names the
/// target), else those its other templates read. None: the action runs per panel.
pub fn key_columns(action: &PanelAction) -> Vec<String> {
    if let Some(key) = &action.key {
        return key.clone();
    }
    let in_url = row_fields(&action.url);
    if !in_url.is_empty() {
        return in_url.into_iter().collect();
    }
    let used: std::collections::BTreeSet<String> = action
        .templates()
        .iter()
        .flat_map(|(_, source)| row_fields(source))
        .collect();
    used.into_iter().collect()
}

/// Whether a caller may see and run `action`.
pub fn may_run(action: &PanelAction, is_admin: bool) -> bool {
    action.role == ActionRole::Editor || is_admin
}

impl Actions {
    pub fn new(
        panels: Arc<PanelEngine>,
        engine: Arc<QueryEngine>,
        store: Arc<Store>,
        auth: Arc<Auth>,
        allowed_targets: Arc<Vec<IpNetwork>>,
    ) -> Self {
        Self {
            panels,
            engine,
            store,
            auth,
            http: crate::alerts::webhook_client(allowed_targets.clone()),
            allowed_targets,
            variables: Arc::default(),
            runs: Arc::default(),
        }
    }

    /// Adds a `${NAME}` the server provides, and lets calls reach `also_allowed` (the demo's
    /// simulated agents on loopback).
    pub fn with_variable(
        mut self,
        name: &str,
        value: String,
        also_allowed: Option<IpNetwork>,
    ) -> Self {
        Arc::make_mut(&mut self.variables).insert(name.to_string(), value);
        if let Some(network) = also_allowed {
            let mut allowed = (*self.allowed_targets).clone();
            allowed.push(network);
            self.allowed_targets = Arc::new(allowed);
            self.http = crate::alerts::webhook_client(self.allowed_targets.clone());
        }
        self
    }

    /// Finds the row and renders the call, without running it (the confirmation page shows
    /// what `confirm` says of the row).
    pub async fn prepare(&self, ask: &Ask<'_>, who: &Who) -> Result<Prepared, ActionError> {
        let panel = self.panels.panel(ask.tenant, ask.panel)?;
        let action = panel
            .config
            .actions
            .iter()
            .find(|a| a.id == ask.action)
            .cloned()
            .ok_or_else(|| ActionError::UnknownAction {
                panel: ask.panel.to_string(),
                action: ask.action.to_string(),
            })?;
        if !may_run(&action, who.is_admin) {
            return Err(ActionError::AdminOnly(action.id));
        }
        let key = client_key(&action, ask.row)?;
        let (row, target) = if key.is_empty() {
            (Map::new(), ask.panel.to_string())
        } else {
            let target = target_text(&key);
            let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
            let row = self
                .panels
                .find_row(ask.tenant, ask.panel, ask.request, &key, now)
                .await?
                .ok_or_else(|| ActionError::NoSuchRow {
                    panel: ask.panel.to_string(),
                    target: target.clone(),
                })?;
            (row, target)
        };
        let run = crate::auth::random_token()[..16].to_string();
        let context = json!({
            "row": row, "user": who.user, "tenant": ask.tenant, "panel": ask.panel,
            "action": action.id, "run": run, "vars": ask.request.vars, "target": target,
        });
        let render = |template: &'static str, name: &str, source: &str| {
            render_action_text(name, source, &context).map_err(|message| ActionError::Render {
                action: action.id.clone(),
                template,
                message,
            })
        };
        let url = render("url", "url.url", &action.url)?;
        let body = match &action.body {
            Some(source) if action.is_json() => {
                let text = render("body", "body.json", source)?;
                serde_json::from_str::<Value>(&text).map_err(|e| ActionError::Render {
                    action: action.id.clone(),
                    template: "body",
                    message: format!("not JSON once rendered ({e}); write values without quotes"),
                })?;
                Some(text)
            }
            Some(source) => Some(render("body", "body.txt", source)?),
            // A GET or DELETE carries no body unless one is written.
            None if matches!(action.method, ActionMethod::Get | ActionMethod::Delete) => None,
            None => Some(context.to_string()),
        };
        let confirm = match &action.confirm {
            Some(source) => Some(render("confirm", "confirm.txt", source)?),
            None => None,
        };
        Ok(Prepared {
            run,
            tenant: ask.tenant.to_string(),
            panel: ask.panel.to_string(),
            row,
            key,
            target,
            confirm,
            call: Call { url, body },
            action,
        })
    }

    /// Starts the prepared run in the background; refused while another run of the same
    /// action on the same target is under way.
    pub fn start(&self, prepared: Prepared, who: &Who) -> Result<Run, ActionError> {
        let run = Run {
            run: prepared.run.clone(),
            tenant: prepared.tenant.clone(),
            panel: prepared.panel.clone(),
            action: prepared.action.id.clone(),
            label: prepared.action.label.clone(),
            target: prepared.target.clone(),
            actor: who.actor.name.clone(),
            status: RunStatus::Running,
            started_at: chrono::Utc::now().timestamp_millis(),
            duration_ms: None,
            attempts: 0,
            http_status: None,
            error: None,
        };
        self.runs
            .begin(run.clone())
            .map_err(|other| ActionError::Busy {
                action: run.action.clone(),
                target: run.target.clone(),
                run: other,
            })?;
        let task = record::Finish {
            store: self.store.clone(),
            auth: self.auth.clone(),
            runs: self.runs.clone(),
            actor: who.actor.clone(),
        };
        let (http, allowed) = (self.http.clone(), self.allowed_targets.clone());
        let variables = self.variables.clone();
        let started = run.clone();
        tokio::spawn(async move {
            let clock = std::time::Instant::now();
            let outcome = send::deliver(
                &http,
                &allowed,
                &variables,
                &prepared.action,
                &prepared.call,
            )
            .await;
            task.finish(started, outcome, clock.elapsed()).await;
        });
        Ok(run)
    }

    /// A run of the tenant: from memory, else from the `actions` table (after a restart).
    pub async fn run(&self, tenant: &str, id: &str) -> Result<Run, ActionError> {
        if let Some(run) = self.runs.get(tenant, id) {
            return Ok(run);
        }
        let store = self.store.tenant(tenant).await?;
        record::read(&self.engine, &store, tenant, id)
            .await?
            .ok_or_else(|| ActionError::UnknownRun(id.to_string()))
    }

    /// The panel's newest runs, those under way first in time.
    pub fn recent(&self, tenant: &str, panel: &str, max: usize) -> Vec<Run> {
        self.runs.recent(tenant, panel, max)
    }
}

/// The key columns' values from the client's row, as text (`None`: null).
fn client_key(
    action: &PanelAction,
    row: &Map<String, Value>,
) -> Result<Vec<(String, Option<String>)>, ActionError> {
    key_columns(action)
        .into_iter()
        .map(|column| {
            let value = match row.get(&column) {
                None => {
                    return Err(ActionError::MissingKey {
                        action: action.id.clone(),
                        column,
                    });
                }
                Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            };
            Ok((column, value))
        })
        .collect()
}

/// `vm=vm-1, zone=eu`: the key as runs, the table and messages show it.
fn target_text(key: &[(String, Option<String>)]) -> String {
    key.iter()
        .map(|(c, v)| format!("{c}={}", v.as_deref().unwrap_or("null")))
        .collect::<Vec<_>>()
        .join(", ")
}
