//! The seed tenants under `serve --demo`: for each of `pimeet` and `kraliki` whose folder is in
//! the tenants directory, a week of history on first start, then live rows every few seconds
//! from simulated units that also obey the dashboard's actions (see [`super::agents`]).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::fleet::{Command, Fleet};
use super::kraliki::{self, Kraliki};
use super::pimeet::{self, PiMeet};
use super::{HISTORY_STEP, fill, is_empty, write};
use crate::storage::{StorageError, Store, TenantStore};

const LIVE_STEP: Duration = Duration::from_secs(5);

/// The simulated fleets, shared by the writers and the agents.
pub struct Seeds {
    pub pimeet: Fleet,
    pub kraliki: Fleet,
}

impl Default for Seeds {
    fn default() -> Self {
        Self {
            pimeet: Fleet::new(pimeet::device_ids(pimeet::DEVICES)),
            kraliki: Fleet::new(kraliki::vm_ids(kraliki::VMS)),
        }
    }
}

impl Seeds {
    /// Sends `command` to `unit` of `tenant`'s fleet.
    pub fn command(&self, tenant: &str, unit: &str, command: &str) -> Result<(), String> {
        let command =
            Command::parse(command).ok_or_else(|| format!("unknown command {command:?}"))?;
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let (fleet, obeys) = match tenant {
            pimeet::TENANT => (&self.pimeet, pimeet::obeys(command)),
            kraliki::TENANT => (&self.kraliki, kraliki::obeys(command)),
            other => return Err(format!("no simulated fleet for tenant {other:?}")),
        };
        if !obeys {
            return Err(format!("a {tenant} unit does not do {command:?}"));
        }
        fleet.command(unit, command, now)
    }
}

/// Writes `history` of PiMeet rows ending at `now_ns` and persists them.
pub async fn fill_pimeet(
    tenant: &Arc<TenantStore>,
    now_ns: i64,
    history: Duration,
    devices: usize,
    seed: u64,
) -> Result<u64, StorageError> {
    let mut generator = PiMeet::new(devices, seed);
    let fleet = Fleet::default();
    fill(tenant, now_ns, history, |times| {
        generator.batches(times, &fleet.at(now_ns), now_ns)
    })
    .await
}

/// Writes `history` of Kraliki rows ending at `now_ns` and persists them.
pub async fn fill_kraliki(
    tenant: &Arc<TenantStore>,
    now_ns: i64,
    history: Duration,
    vms: usize,
    customers: usize,
    seed: u64,
) -> Result<u64, StorageError> {
    let mut generator = Kraliki::new(vms, customers, seed);
    let fleet = Fleet::default();
    fill(tenant, now_ns, history, |times| {
        generator.batches(times, &fleet.at(now_ns), HISTORY_STEP.as_nanos() as i64)
    })
    .await
}

/// Fills every seed tenant present, cancels `history_written` (also when that fails), then
/// keeps writing until `cancel`.
pub async fn run(
    store: Arc<Store>,
    seeds: Arc<Seeds>,
    cancel: CancellationToken,
    history_written: CancellationToken,
) {
    let _signal = history_written.clone().drop_guard();
    if let Err(e) = run_inner(&store, &seeds, &cancel, &history_written).await {
        tracing::error!(error = %e, "seed tenants' writer stopped");
    }
}

async fn run_inner(
    store: &Arc<Store>,
    seeds: &Seeds,
    cancel: &CancellationToken,
    history_written: &CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let present = |name: &str| store.tenants_dir().join(name).join("tenant.yaml").is_file();
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let history = super::HISTORY;
    let pimeet = if present(pimeet::TENANT) {
        let tenant = store.tenant(pimeet::TENANT).await?;
        if is_empty(&tenant, "devices") {
            let rows = fill_pimeet(&tenant, now, history, pimeet::DEVICES, 7).await?;
            tracing::info!(tenant = pimeet::TENANT, rows, "seed history written");
        }
        Some(tenant)
    } else {
        None
    };
    let kraliki = if present(kraliki::TENANT) {
        let tenant = store.tenant(kraliki::TENANT).await?;
        if is_empty(&tenant, "vms") {
            let rows =
                fill_kraliki(&tenant, now, history, kraliki::VMS, kraliki::CUSTOMERS, 11).await?;
            tracing::info!(tenant = kraliki::TENANT, rows, "seed history written");
        }
        Some(tenant)
    } else {
        None
    };
    history_written.cancel();
    let mut devices = PiMeet::new(pimeet::DEVICES, now as u64);
    let mut vms = Kraliki::new(kraliki::VMS, kraliki::CUSTOMERS, now as u64);
    let step_ns = LIVE_STEP.as_nanos() as i64;
    let mut tick = tokio::time::interval(LIVE_STEP);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        // A step that cannot be written (buffers full for a moment) is skipped, not the end.
        if let Some(tenant) = &pimeet {
            let batches = devices.batches(&[now], &seeds.pimeet.at(now), now);
            if let Err(e) = write(tenant, batches).await {
                tracing::warn!(tenant = pimeet::TENANT, error = %e, "a live step was not written");
            }
        }
        if let Some(tenant) = &kraliki {
            let batches = vms.batches(&[now], &seeds.kraliki.at(now), step_ns);
            if let Err(e) = write(tenant, batches).await {
                tracing::warn!(tenant = kraliki::TENANT, error = %e, "a live step was not written");
            }
        }
    }
}
