//! Shared by the benches: a client that can call a bench's own server.

pub mod protocols;

use opsboard::config::ServerConfig;
use opsboard::generate::CpuGenerator;
use opsboard::storage::{OpenMode, Store};

/// A bench knob from the environment (to shrink a run), or its default.
#[allow(dead_code)]
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes `steps` TSBS cpu rows per host, `step_ns` apart from `start`, into `tenant`'s `cpu`
/// table and persists them; returns the rows written.
#[allow(dead_code)]
pub async fn fill_tsbs(
    config: &ServerConfig,
    tenant: &str,
    hosts: usize,
    start: i64,
    steps: i64,
    step_ns: i64,
) -> usize {
    let store = Store::open(
        config.storage.clone(),
        &config.data_dir,
        &config.tenants_dir,
        OpenMode::ReadWrite,
    )
    .await
    .expect("store");
    opsboard::live::apply_tenant_settings(&store)
        .await
        .expect("tenant settings");
    let tenant = store.tenant(tenant).await.expect("tenant");
    let times: Vec<i64> = (0..steps).map(|i| start + i * step_ns).collect();
    let mut generator = CpuGenerator::new(hosts, 1);
    let per_batch = (100_000 / hosts).max(1);
    for chunk in times.chunks(per_batch) {
        tenant
            .write("cpu", generator.batch(chunk))
            .await
            .expect("write");
    }
    tenant.persist_all().await.expect("persist");
    if !tenant.rollups_of("cpu").is_empty() {
        // Roll the files up now, as a server that ran a while has them.
        let now_ms = chrono::Utc::now().timestamp_millis();
        tenant.maintain(now_ms).await.expect("maintain");
    }
    times.len() * hosts
}

#[allow(dead_code)]
/// A client carrying an operator key for the bench's server (every route needs one).
pub async fn keyed_client(config: &ServerConfig) -> reqwest::Client {
    let key = opsboard::auth::operator_key(config, "bench")
        .await
        .expect("bench key");
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {key}").parse().expect("header");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}
