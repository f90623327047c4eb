//! Demo data. `serve --demo` makes sure the `demo` tenant exists, backfills a week of history on
//! first start and then writes fresh rows every few seconds, so a new user sees live, moving
//! data at once. `opsboard generate demo` writes the same history without serving.
//!
//! Tables (declared in `tenants/demo/tenant.yaml`): `cpu` (TSBS cpu-only), `metrics` (per
//! server cpu/memory/disk percentages, requests and response time), `service_health` (status
//! 0 healthy, 1 degraded, 2 down, with an error text; `legacy-ftp` goes silent two hours before
//! "now" so the health panel shows a stale service) and `error_logs`.
//!
//! The seed tenants — `pimeet` (seed 000), `pfcam` (001), `omendb` (002) and `kraliki` (004)
//! — are filled and kept alive by [`seeds`]; pimeet's and kraliki's simulated units answer
//! actions through [`agents`].

pub mod agents;
mod fleet;
pub mod kraliki;
pub mod omendb;
pub mod pfcam;
pub mod pimeet;
pub mod seeds;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, DictionaryArray, Float64Array, Int64Array, StringArray, TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema};
use arrow::record_batch::RecordBatch;
use tokio_util::sync::CancellationToken;

use crate::generate::{CpuGenerator, Rng};
use crate::storage::{StorageError, Store, TenantStore, tag_type, time_type};

pub const TENANT: &str = "demo";
const HOSTS: usize = 10;
pub const HISTORY: Duration = Duration::from_secs(7 * 86_400);
const HISTORY_STEP: Duration = Duration::from_secs(60);
const LIVE_STEP: Duration = Duration::from_secs(5);

const SERVERS: [&str; 5] = ["web-01", "web-02", "web-03", "db-01", "cache-01"];
/// Edge devices for the alerting examples; `cam-lobby` stops reporting (no heartbeat).
const DEVICES: [&str; 4] = ["cam-lobby", "cam-dock", "sensor-roof", "gw-01"];
const SERVICES: [&str; 6] = ["api", "auth", "billing", "search", "queue", "legacy-ftp"];
/// `legacy-ftp` stops reporting this long before now.
const SILENT_FOR_NS: i64 = 2 * 3_600 * 1_000_000_000;
const ERRORS: [&str; 5] = [
    "upstream timed out after 30s",
    "connection reset by peer",
    "certificate expires in 7 days",
    "disk usage above 90%",
    "deadlock detected; transaction retried",
];

const DEMO_TENANT_YAML: &str = "name: Demo\ntimezone: UTC\ntables:\n  cpu:\n    tags: [hostname, region, datacenter, rack, os, arch, team, service, service_version, service_environment]\n    retention: 30d\n";

/// Synthetic, deterministic rows for the demo tables.
pub struct DemoGenerator {
    cpu: CpuGenerator,
    rng: Rng,
}

impl DemoGenerator {
    pub fn new(seed: u64) -> Self {
        Self {
            cpu: CpuGenerator::new(HOSTS, seed),
            rng: Rng::new(seed ^ 0xD3_4D),
        }
    }

    /// One step at each of `times` for every demo table.
    pub fn batches(&mut self, times: &[i64], now_ns: i64) -> Vec<(&'static str, RecordBatch)> {
        vec![
            ("cpu", self.cpu.batch(times)),
            ("metrics", self.metrics(times)),
            ("service_health", self.health(times, now_ns)),
            ("error_logs", self.errors(times)),
            ("devices", self.devices(times, now_ns)),
        ]
    }

    fn metrics(&mut self, times: &[i64]) -> RecordBatch {
        let mut t = vec![];
        let mut server = vec![];
        let (mut cpu, mut mem, mut disk, mut requests, mut response) =
            (vec![], vec![], vec![], vec![], vec![]);
        for &time in times {
            let hour = (time / 3_600_000_000_000).rem_euclid(24) as f64;
            // A daily cycle: busy afternoons, quiet nights.
            let load = 0.5 + 0.4 * ((hour - 14.0) / 24.0 * std::f64::consts::TAU).cos();
            for (i, name) in SERVERS.iter().enumerate() {
                t.push(time);
                server.push(*name);
                let c = (load * 70.0 + self.rng.next_f64() * 20.0 + i as f64 * 3.0).min(100.0);
                cpu.push(c);
                mem.push(40.0 + i as f64 * 9.0 + self.rng.next_f64() * 15.0);
                disk.push(55.0 + i as f64 * 5.0 + self.rng.next_f64() * 2.0);
                requests.push((load * 900.0 + self.rng.next_f64() * 200.0) as i64);
                response.push(40.0 + c * 1.5 + self.rng.next_f64() * 30.0);
            }
        }
        batch(vec![
            ("time", time_column(t)),
            ("server_name", tags(&server)),
            ("cpu_percent", Arc::new(Float64Array::from(cpu))),
            ("memory_percent", Arc::new(Float64Array::from(mem))),
            ("disk_percent", Arc::new(Float64Array::from(disk))),
            ("requests", Arc::new(Int64Array::from(requests))),
            ("response_ms", Arc::new(Float64Array::from(response))),
        ])
    }

    /// Disk use (GB), API spend (USD per step), request latency (ms) and failed logins per
    /// device: cam-dock's disk sits above 80 GB, sensor-roof's above 90, latency spikes now and
    /// then, and a burst of failed logins happens about once an hour.
    fn devices(&mut self, times: &[i64], now_ns: i64) -> RecordBatch {
        let mut t = vec![];
        let mut device = vec![];
        let (mut disk, mut cost, mut latency, mut failed) = (vec![], vec![], vec![], vec![]);
        for &time in times {
            for (i, name) in DEVICES.iter().enumerate() {
                if *name == "cam-lobby" && time > now_ns - SILENT_FOR_NS {
                    continue;
                }
                t.push(time);
                device.push(*name);
                disk.push([42.0, 84.0, 91.5, 63.0][i] + self.rng.next_f64() * 2.0);
                cost.push(0.0012 + self.rng.next_f64() * 0.0006);
                let spike = self.rng.next_f64() < 0.01;
                latency.push(if spike { 1_500.0 } else { 180.0 } + self.rng.next_f64() * 150.0);
                let burst = self.rng.next_f64() < 0.0005;
                failed.push(if burst {
                    25
                } else {
                    (self.rng.next_f64() * 1.3) as i64
                });
            }
        }
        batch(vec![
            ("time", time_column(t)),
            ("device", tags(&device)),
            ("disk_used_gb", Arc::new(Float64Array::from(disk))),
            ("api_cost_usd", Arc::new(Float64Array::from(cost))),
            ("latency_ms", Arc::new(Float64Array::from(latency))),
            ("failed_logins", Arc::new(Int64Array::from(failed))),
        ])
    }

    fn health(&mut self, times: &[i64], now_ns: i64) -> RecordBatch {
        let mut t = vec![];
        let mut name = vec![];
        let mut status = vec![];
        let mut error: Vec<Option<&str>> = vec![];
        for &time in times {
            for service in SERVICES {
                if service == "legacy-ftp" && time > now_ns - SILENT_FOR_NS {
                    continue;
                }
                let roll = self.rng.next_f64();
                let s = if service == "billing" && roll < 0.6 {
                    1
                } else if roll < 0.02 {
                    2
                } else if roll < 0.08 {
                    1
                } else {
                    0
                };
                t.push(time);
                name.push(service);
                status.push(s);
                error.push(
                    (s > 0).then(|| ERRORS[(self.rng.next_u64() % ERRORS.len() as u64) as usize]),
                );
            }
        }
        batch(vec![
            ("time", time_column(t)),
            ("name", tags(&name)),
            ("last_check_status", Arc::new(Int64Array::from(status))),
            ("error", Arc::new(StringArray::from(error))),
        ])
    }

    fn errors(&mut self, times: &[i64]) -> RecordBatch {
        const SEVERITIES: [&str; 4] = ["INFO", "WARNING", "ERROR", "CRITICAL"];
        let mut t = vec![];
        let (mut service, mut severity, mut message) = (vec![], vec![], vec![]);
        for &time in times {
            if self.rng.next_f64() < 0.5 {
                continue;
            }
            let roll = self.rng.next_f64();
            let level = if roll < 0.5 {
                0
            } else if roll < 0.8 {
                1
            } else if roll < 0.97 {
                2
            } else {
                3
            };
            t.push(time);
            service.push(SERVICES[(self.rng.next_u64() % 5) as usize]);
            severity.push(SEVERITIES[level]);
            message.push(ERRORS[(self.rng.next_u64() % ERRORS.len() as u64) as usize]);
        }
        batch(vec![
            ("time", time_column(t)),
            ("service", tags(&service)),
            ("severity", tags(&severity)),
            ("error_message", Arc::new(StringArray::from(message))),
        ])
    }
}

fn time_column(ns: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from(ns).with_timezone("UTC"))
}

fn tags(values: &[&str]) -> ArrayRef {
    Arc::new(
        values
            .iter()
            .copied()
            .collect::<DictionaryArray<Int32Type>>(),
    )
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| {
            let data_type = match array.data_type() {
                DataType::Timestamp(..) => time_type(),
                DataType::Dictionary(..) => tag_type(),
                other => other.clone(),
            };
            Field::new(*name, data_type, *name != "time")
        })
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("demo columns line up")
}

/// Writes `history` of demo rows ending at `now_ns`, one step a minute, and
/// persists them. Returns the rows written.
pub async fn fill_history(
    tenant: &Arc<TenantStore>,
    now_ns: i64,
    history: Duration,
    seed: u64,
) -> Result<u64, StorageError> {
    let mut generator = DemoGenerator::new(seed);
    fill(tenant, now_ns, history, |times| {
        generator.batches(times, now_ns)
    })
    .await
}

/// Writes a step a minute over `history` ending at `now_ns` — `rows` makes each chunk's
/// batches — and persists them. Returns the rows written.
async fn fill(
    tenant: &Arc<TenantStore>,
    now_ns: i64,
    history: Duration,
    mut rows: impl FnMut(&[i64]) -> Vec<(&'static str, RecordBatch)>,
) -> Result<u64, StorageError> {
    let mut written = 0;
    for chunk in history_times(now_ns, history).chunks(720) {
        written += write(tenant, rows(chunk)).await?;
    }
    tenant.persist_all().await?;
    Ok(written)
}

/// A step a minute over `history` ending at `now_ns`.
fn history_times(now_ns: i64, history: Duration) -> Vec<i64> {
    let step = HISTORY_STEP.as_nanos() as i64;
    let start = now_ns - history.as_nanos().min(i64::MAX as u128) as i64;
    (start..now_ns).step_by(step as usize).collect()
}

/// Whether `table` holds no row yet (history is written once).
fn is_empty(tenant: &TenantStore, table: &str) -> bool {
    tenant.table(table).is_none_or(|t| {
        let s = t.stats();
        s.buffered_rows + s.persisted_rows == 0
    })
}

/// Appends the non-empty batches; returns their rows.
async fn write(
    tenant: &Arc<TenantStore>,
    batches: Vec<(&'static str, RecordBatch)>,
) -> Result<u64, StorageError> {
    let mut rows = 0;
    for (table, batch) in batches {
        if batch.num_rows() > 0 {
            rows += batch.num_rows() as u64;
            tenant.write(table, batch).await?;
        }
    }
    Ok(rows)
}

/// Writes the demo history, cancels `history_written` (also when it fails: waiting for it
/// would then be forever), then keeps the live data coming until `cancel`.
pub async fn run(store: Arc<Store>, cancel: CancellationToken, history_written: CancellationToken) {
    let _signal = history_written.clone().drop_guard();
    if let Err(e) = run_inner(&store, &cancel, &history_written).await {
        tracing::error!(error = %e, "demo data writer stopped");
    }
}

async fn run_inner(
    store: &Arc<Store>,
    cancel: &CancellationToken,
    history_written: &CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = store.tenants_dir().join(TENANT);
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("tenant.yaml"), DEMO_TENANT_YAML)?;
    }
    let tenant = store.tenant(TENANT).await?;
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    if is_empty(&tenant, "metrics") {
        let rows = fill_history(&tenant, now, HISTORY, 42).await?;
        tracing::info!(tenant = TENANT, rows, "demo history written");
    }
    history_written.cancel();
    let mut generator = DemoGenerator::new(now as u64);
    let mut tick = tokio::time::interval(LIVE_STEP);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        write(&tenant, generator.batches(&[now], now)).await?;
    }
}
