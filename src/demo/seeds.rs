//! The seed tenants under `serve --demo`: for each of `pimeet`, `kraliki`, `pfcam` and `omendb`
//! whose folder is in the tenants directory, a week of history on first start, then live rows
//! every few seconds — pimeet's and kraliki's from simulated units that also obey the
//! dashboard's actions (see [`super::agents`]), pfcam's cameras with new snapshots.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::fleet::{Command, Fleet};
use super::kraliki::{self, Kraliki};
use super::omendb::{self, OmenDb};
use super::pfcam::{self, Pfcam};
use super::pimeet::{self, PiMeet};
use super::{HISTORY_STEP, fill, history_times, is_empty, write};
use crate::storage::{StorageError, Store, TenantStore};

const LIVE_STEP: Duration = Duration::from_secs(5);
/// A camera's chance of an event per history step (a minute) and per live step.
const HISTORY_EVENT_CHANCE: f64 = 0.01;
const LIVE_EVENT_CHANCE: f64 = 0.003;

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

/// Writes `history` of PFCAM rows ending at `now_ns`, their snapshots uploaded first, and
/// persists them.
pub async fn fill_pfcam(
    tenant: &Arc<TenantStore>,
    now_ns: i64,
    history: Duration,
    cameras: usize,
    seed: u64,
) -> Result<u64, StorageError> {
    let mut generator = Pfcam::new(cameras, seed, HISTORY_EVENT_CHANCE);
    let mut written = 0;
    for chunk in history_times(now_ns, history).chunks(720) {
        written += write_pfcam(tenant, generator.step(chunk, now_ns), now_ns).await?;
    }
    tenant.persist_all().await?;
    Ok(written)
}

/// Uploads a step's snapshots, then writes its rows (which name them).
async fn write_pfcam(
    tenant: &Arc<TenantStore>,
    step: pfcam::Step,
    now_ns: i64,
) -> Result<u64, StorageError> {
    let now_ms = now_ns / 1_000_000;
    for (file, content_type) in step.pictures {
        tenant
            .put_attachment(file, content_type, None, now_ms)
            .await?;
    }
    write(tenant, step.batches).await
}

/// Writes `history` of OmenDB rows ending at `now_ns` and persists them.
pub async fn fill_omendb(
    tenant: &Arc<TenantStore>,
    now_ns: i64,
    history: Duration,
    customers: usize,
    seed: u64,
) -> Result<u64, StorageError> {
    let mut generator = OmenDb::new(customers, seed);
    let step = HISTORY_STEP.as_nanos() as i64;
    fill(tenant, now_ns, history, |times| {
        generator.batches(times, step)
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
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let history = super::HISTORY;
    let pimeet = seed_tenant(store, pimeet::TENANT, "devices", |t| async move {
        fill_pimeet(&t, now, history, pimeet::DEVICES, 7).await
    })
    .await?;
    let kraliki = seed_tenant(store, kraliki::TENANT, "vms", |t| async move {
        fill_kraliki(&t, now, history, kraliki::VMS, kraliki::CUSTOMERS, 11).await
    })
    .await?;
    let pfcam = seed_tenant(store, pfcam::TENANT, "cameras", |t| async move {
        fill_pfcam(&t, now, history, pfcam::CAMERAS, 5).await
    })
    .await?;
    let omendb = seed_tenant(store, omendb::TENANT, "usage", |t| async move {
        fill_omendb(&t, now, history, omendb::CUSTOMERS, 13).await
    })
    .await?;
    history_written.cancel();
    let mut devices = PiMeet::new(pimeet::DEVICES, now as u64);
    let mut vms = Kraliki::new(kraliki::VMS, kraliki::CUSTOMERS, now as u64);
    let mut cameras = Pfcam::new(pfcam::CAMERAS, now as u64, LIVE_EVENT_CHANCE);
    let mut services = OmenDb::new(omendb::CUSTOMERS, now as u64);
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
        if let Some(tenant) = &pfcam
            && let Err(e) = write_pfcam(tenant, cameras.step(&[now], now), now).await
        {
            tracing::warn!(tenant = pfcam::TENANT, error = %e, "a live step was not written");
        }
        if let Some(tenant) = &omendb
            && let Err(e) = write(tenant, services.batches(&[now], step_ns)).await
        {
            tracing::warn!(tenant = omendb::TENANT, error = %e, "a live step was not written");
        }
    }
}

/// The seed tenant `name` when its folder is there, its history written by `fill` when
/// `table` is still empty.
async fn seed_tenant<F, Fut>(
    store: &Arc<Store>,
    name: &str,
    table: &str,
    fill: F,
) -> Result<Option<Arc<TenantStore>>, StorageError>
where
    F: FnOnce(Arc<TenantStore>) -> Fut,
    Fut: std::future::Future<Output = Result<u64, StorageError>>,
{
    if !store.tenants_dir().join(name).join("tenant.yaml").is_file() {
        return Ok(None);
    }
    let tenant = store.tenant(name).await?;
    if is_empty(&tenant, table) {
        let rows = fill(tenant.clone()).await?;
        tracing::info!(tenant = name, rows, "seed history written");
    }
    Ok(Some(tenant))
}
