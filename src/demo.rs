//! `serve --demo`: makes sure the `demo` tenant exists, backfills a week of TSBS cpu history
//! on first start and then writes a fresh row per host every few seconds, so a new user sees
//! live, moving data at once.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::generate::CpuGenerator;
use crate::storage::Store;

pub const TENANT: &str = "demo";
const TABLE: &str = "cpu";
const HOSTS: usize = 10;
const HISTORY: Duration = Duration::from_secs(7 * 86_400);
const HISTORY_STEP: Duration = Duration::from_secs(300);
const LIVE_STEP: Duration = Duration::from_secs(5);

const DEMO_TENANT_YAML: &str = "name: Demo\ntimezone: UTC\ntables:\n  cpu:\n    tags: [hostname, region, datacenter, rack, os, arch, team, service, service_version, service_environment]\n    retention: 30d\n";

pub async fn run(store: Arc<Store>, cancel: CancellationToken) {
    if let Err(e) = run_inner(&store, &cancel).await {
        tracing::error!(error = %e, "demo data writer stopped");
    }
}

async fn run_inner(
    store: &Arc<Store>,
    cancel: &CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = store.tenants_dir().join(TENANT);
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("tenant.yaml"), DEMO_TENANT_YAML)?;
    }
    let tenant = store.tenant(TENANT).await?;
    let mut generator = CpuGenerator::new(HOSTS, 42);
    let step_ns = |d: Duration| d.as_nanos() as i64;
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let empty = tenant.table(TABLE).is_none_or(|t| {
        let s = t.stats();
        s.buffered_rows + s.persisted_rows == 0
    });
    if empty {
        let start = now - step_ns(HISTORY);
        let times: Vec<i64> = (start..now)
            .step_by(step_ns(HISTORY_STEP) as usize)
            .collect();
        for chunk in times.chunks(288) {
            tenant.write(TABLE, generator.batch(chunk)).await?;
        }
        tenant.persist_all().await?;
        tracing::info!(
            tenant = TENANT,
            rows = times.len() * HOSTS,
            "demo history written"
        );
    }
    let mut tick = tokio::time::interval(LIVE_STEP);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        tenant.write(TABLE, generator.batch(&[now])).await?;
    }
}
