//! `GET /healthz`: liveness for load balancers and scripts (with memory by consumer against
//! `memory.budget`); no auth, no storage access.
//! `GET /metrics`: the server's own counters in Prometheus text format, and every tenant's
//! usage ([`crate::usage`]).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;
use super::access::{Access, Route};
use crate::usage::label_value;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/healthz", Access::Public, healthz),
        // Cache and storage figures across all tenants: for operators, with a global key.
        Route::get("/metrics", Access::GlobalAdmin, metrics),
    ]
}

async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let consumers: serde_json::Map<String, Value> = memory(&state)
        .into_iter()
        .map(|(name, used, limit)| (name.to_string(), json!({"used": used, "limit": limit})))
        .collect();
    // How many, not which: /healthz is public and tenant names are not (they are on
    // /metrics, for global admins).
    let leases = state.leases.owned().len();
    // With the WAL in the object store: may this node acknowledge writes (its stream's lease).
    let wal = state
        .store
        .wal_stream()
        .map(|(stream, lease)| json!(lease.state(stream)));
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "memory": {"budget": state.config.memory.budget, "consumers": consumers},
        "node": {"id": state.leases.node(), "leases": leases, "wal": wal},
    }))
}

/// Each consumer of `memory.budget`: its name, the bytes it holds, its share.
fn memory(state: &AppState) -> [(&'static str, u64, u64); 4] {
    let buffers = state.store.buffers();
    let cache = state.panels.cache_stats();
    let (metadata, metadata_limit) = state.engine.metadata_cache_memory();
    [
        (
            "write_buffers",
            buffers.used() as u64,
            buffers.limit() as u64,
        ),
        (
            "queries",
            state.engine.memory_in_use() as u64,
            state.config.query.memory_budget_bytes as u64,
        ),
        ("panel_cache", cache.weighted_bytes, cache.max_bytes),
        ("parquet_metadata", metadata as u64, metadata_limit as u64),
    ]
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let cache = state.panels.cache_stats();
    let files = state.engine.parquet_files_scanned();
    let last_rows = state.engine.last_rows_reads();
    let rollups = state.engine.rollup_reads();
    let mut held = String::from(
        "# HELP opsboard_memory_bytes Bytes each consumer holds of memory.budget.\n\
         # TYPE opsboard_memory_bytes gauge\n",
    );
    let mut limits = String::from(
        "# HELP opsboard_memory_limit_bytes Each consumer's share of memory.budget.\n\
         # TYPE opsboard_memory_limit_bytes gauge\n",
    );
    for (name, used, limit) in memory(&state) {
        held.push_str(&format!(
            "opsboard_memory_bytes{{consumer=\"{name}\"}} {used}\n"
        ));
        limits.push_str(&format!(
            "opsboard_memory_limit_bytes{{consumer=\"{name}\"}} {limit}\n"
        ));
    }
    let node = label_value(state.leases.node());
    let mut leases = String::from(
        "# HELP opsboard_tenant_lease_epoch Epoch of each tenant lease this node holds (it runs their alert rules and upkeep).\n\
         # TYPE opsboard_tenant_lease_epoch gauge\n",
    );
    for (tenant, held) in state.leases.owned() {
        let tenant = label_value(&tenant);
        leases.push_str(&format!(
            "opsboard_tenant_lease_epoch{{node=\"{node}\",tenant=\"{tenant}\"}} {}\n",
            held.epoch
        ));
    }
    if let Some((stream, lease)) = state.store.wal_stream() {
        let wal = lease.state(stream);
        leases.push_str(&format!(
            "# HELP opsboard_wal_lease_held Whether this node may acknowledge writes into its WAL stream in the object store (1) or not (0: database unreachable or fenced).\n\
             # TYPE opsboard_wal_lease_held gauge\n\
             opsboard_wal_lease_held{{node=\"{node}\",stream=\"{}\"}} {}\n",
            label_value(&wal.stream),
            u8::from(wal.held)
        ));
    }
    if let Some(cache) = state.store.file_cache() {
        leases.push_str(&format!(
            "# HELP opsboard_file_cache_hits_total Parquet reads served from this node's local copies of the bucket's files.\n\
             # TYPE opsboard_file_cache_hits_total counter\n\
             opsboard_file_cache_hits_total {}\n\
             # HELP opsboard_file_cache_fetches_total Parquet files copied from the bucket to local disk.\n\
             # TYPE opsboard_file_cache_fetches_total counter\n\
             opsboard_file_cache_fetches_total {}\n\
             # HELP opsboard_file_cache_bytes Bytes of Parquet files held on local disk (limit: storage.cache_bytes).\n\
             # TYPE opsboard_file_cache_bytes gauge\n\
             opsboard_file_cache_bytes {}\n",
            cache.stats.hits.load(std::sync::atomic::Ordering::Relaxed),
            cache.stats.fetches.load(std::sync::atomic::Ordering::Relaxed),
            cache.held_bytes()
        ));
    }
    let body = held
        + &limits
        + &leases
        + &format!(
            "# HELP opsboard_panel_cache_hits_total Panel answers served from the cache.\n\
         # TYPE opsboard_panel_cache_hits_total counter\n\
         opsboard_panel_cache_hits_total {}\n\
         # HELP opsboard_panel_cache_misses_total Panel answers computed.\n\
         # TYPE opsboard_panel_cache_misses_total counter\n\
         opsboard_panel_cache_misses_total {}\n\
         # HELP opsboard_panel_answers_shared_total Cache misses answered by another request's computation of the same answer.\n\
         # TYPE opsboard_panel_answers_shared_total counter\n\
         opsboard_panel_answers_shared_total {}\n\
         # HELP opsboard_panel_scans_shared_total Panel aggregates answered by a query another panel of the same rows ran.\n\
         # TYPE opsboard_panel_scans_shared_total counter\n\
         opsboard_panel_scans_shared_total {}\n\
         # HELP opsboard_panel_cache_entries Panel answers held.\n\
         # TYPE opsboard_panel_cache_entries gauge\n\
         opsboard_panel_cache_entries {}\n\
         # HELP opsboard_panel_cache_bytes Bytes the panel cache holds (limit: opsboard_panel_cache_max_bytes).\n\
         # TYPE opsboard_panel_cache_bytes gauge\n\
         opsboard_panel_cache_bytes {}\n\
         # HELP opsboard_panel_cache_max_bytes Bytes the panel cache may hold (its share of memory.budget).\n\
         # TYPE opsboard_panel_cache_max_bytes gauge\n\
         opsboard_panel_cache_max_bytes {}\n\
         # HELP opsboard_parquet_files_scanned_total Parquet files opened by queries after pruning.\n\
         # TYPE opsboard_parquet_files_scanned_total counter\n\
         opsboard_parquet_files_scanned_total {files}\n\
         # HELP opsboard_last_rows_reads_total Reads served by the newest-row cache (last_rows) instead of a scan.\n\
         # TYPE opsboard_last_rows_reads_total counter\n\
         opsboard_last_rows_reads_total {last_rows}\n\
         # HELP opsboard_rollup_reads_total Aggregates answered from a declared rollup instead of raw rows alone.\n\
         # TYPE opsboard_rollup_reads_total counter\n\
         opsboard_rollup_reads_total {rollups}\n",
            cache.hits,
            cache.misses,
            cache.shared,
            cache.scans_shared,
            cache.entries,
            cache.weighted_bytes,
            cache.max_bytes
        )
        + &crate::usage::prometheus_text(state.store.meter());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
