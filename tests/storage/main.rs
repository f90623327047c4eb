//! The store without HTTP: time pruning of Parquet files, compaction and retention, driven by
//! an explicit clock.

#[path = "../common/mod.rs"]
mod common;
mod rollups;

use std::sync::Arc;

use common::TestDirs;
use opsboard::config::StorageConfig;
use opsboard::generate::CpuGenerator;
use opsboard::query::QueryEngine;
use opsboard::storage::{OpenMode, Store, TenantStore};

const DAY_NS: i64 = 86_400 * 1_000_000_000;
/// 2024-01-01T00:00:00Z
const START_NS: i64 = 1_704_067_200 * 1_000_000_000;

async fn open(dirs: &TestDirs, config: StorageConfig) -> (Arc<Store>, Arc<TenantStore>) {
    let store = Store::open(config, &dirs.data(), &dirs.tenants(), OpenMode::ReadWrite)
        .await
        .unwrap();
    opsboard::live::apply_tenant_settings(&store).await.unwrap();
    let tenant = store.tenant("acme").await.unwrap();
    (store, tenant)
}

async fn scalar(engine: &QueryEngine, tenant: &Arc<TenantStore>, sql: &str) -> String {
    let batches = engine.collect(tenant, sql).await.unwrap();
    arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

/// Writes `days` days of hourly rows for 4 hosts, one flush per day (one file per day).
async fn write_days(tenant: &Arc<TenantStore>, days: i64) {
    let mut generator = CpuGenerator::new(4, 3);
    for d in 0..days {
        let times: Vec<i64> = (0..24)
            .map(|h| START_NS + d * DAY_NS + h * 3_600_000_000_000)
            .collect();
        tenant.write("cpu", generator.batch(&times)).await.unwrap();
        tenant.persist_all().await.unwrap();
    }
}

/// The sum of every `name=N` metric in an EXPLAIN ANALYZE text.
fn metric(plan: &str, name: &str) -> u64 {
    plan.split(&format!("{name}="))
        .skip(1)
        .map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().unwrap()
        })
        .sum()
}

#[tokio::test]
async fn filtered_scans_keep_the_page_index_cached_and_follow_parquet_settings() {
    let dirs = TestDirs::new(&["acme"]);
    let (_store, tenant) = open(&dirs, StorageConfig::default()).await;
    write_days(&tenant, 2).await;
    let engine = QueryEngine::new(Default::default());
    let one_host = "SELECT count(*) AS n FROM cpu WHERE hostname = 'host_1'";
    assert!(scalar(&engine, &tenant, one_host).await.contains("| 48 |"));
    // Both files' footers are cached with their page index, so the next query on them reads
    // and decodes neither again (DataFusion's own reader caches the footer alone).
    assert_eq!(engine.metadata_cache_files(), (2, 2));
    let explain = format!("EXPLAIN ANALYZE {one_host}");
    let plan = scalar(&engine, &tenant, &explain).await;
    assert!(plan.contains("pushdown_rows_pruned="), "{plan}");
    assert_eq!(metric(&plan, "pushdown_rows_pruned"), 0, "{plan}");
    // DataFusion's Parquet settings reach our scans (`DATAFUSION_EXECUTION_PARQUET_*` in a
    // server): with filter pushdown the other hosts' rows are dropped while decoding.
    let settings = datafusion::prelude::SessionConfig::new()
        .set_bool("datafusion.execution.parquet.pushdown_filters", true);
    let pushing = QueryEngine::new(Default::default()).with_engine_settings(settings);
    let plan = scalar(&pushing, &tenant, &explain).await;
    assert_eq!(metric(&plan, "pushdown_rows_pruned"), 144, "{plan}");
    assert!(scalar(&pushing, &tenant, one_host).await.contains("| 48 |"));
}

#[tokio::test]
async fn a_one_day_query_opens_only_that_days_file() {
    let dirs = TestDirs::new(&["acme"]);
    let (_store, tenant) = open(&dirs, StorageConfig::default()).await;
    write_days(&tenant, 30).await;
    assert_eq!(dirs.parquet_files("acme", "cpu").len(), 30);
    let engine = QueryEngine::new(Default::default());
    let day = "time >= '2024-01-10T00:00:00Z' AND time < '2024-01-11T00:00:00Z'";
    let plan = scalar(
        &engine,
        &tenant,
        &format!("EXPLAIN SELECT avg(usage_user) FROM cpu WHERE {day}"),
    )
    .await;
    assert_eq!(plan.matches(".parquet").count(), 1, "{plan}");
    assert!(plan.contains("cpu/2024-01-10/"), "{plan}");
    let before = engine.parquet_files_scanned();
    let count = scalar(
        &engine,
        &tenant,
        &format!("SELECT count(*) AS n FROM cpu WHERE {day}"),
    )
    .await;
    assert!(count.contains("| 96 |"), "{count}");
    assert_eq!(engine.parquet_files_scanned() - before, 1);
    // Without a time filter every file is read.
    let before = engine.parquet_files_scanned();
    scalar(&engine, &tenant, "SELECT avg(usage_user) FROM cpu").await;
    assert_eq!(engine.parquet_files_scanned() - before, 30);
}

#[tokio::test]
async fn compaction_swaps_small_files_without_changing_results() {
    let dirs = TestDirs::new(&["acme"]);
    let config = StorageConfig {
        compaction_min_files: 3,
        ..Default::default()
    };
    let (_store, tenant) = open(&dirs, config).await;
    let mut generator = CpuGenerator::new(4, 9);
    // Five flushes inside one day: five small files.
    for i in 0..5 {
        let times: Vec<i64> = (0..6)
            .map(|m| START_NS + (i * 6 + m) * 60_000_000_000)
            .collect();
        tenant.write("cpu", generator.batch(&times)).await.unwrap();
        tenant.persist_all().await.unwrap();
    }
    assert_eq!(dirs.parquet_files("acme", "cpu").len(), 5);
    let engine = QueryEngine::new(Default::default());
    let sql = "SELECT hostname, count(*) AS n, round(sum(usage_user), 6) AS s FROM cpu GROUP BY hostname ORDER BY hostname";
    let before = scalar(&engine, &tenant, sql).await;

    let now_ms = START_NS / 1_000_000 + 86_400_000;
    let report = tenant.maintain(now_ms).await.unwrap();
    assert_eq!(report.compacted_files, 5);
    assert_eq!(
        scalar(&engine, &tenant, sql).await,
        before,
        "compaction changed results"
    );
    assert_eq!(tenant.table("cpu").unwrap().stats().files, 1);
    // Old files stay on disk through the grace period for queries already planned...
    assert_eq!(dirs.parquet_files("acme", "cpu").len(), 6);
    // ...and are deleted once it has passed.
    let report = tenant.maintain(now_ms + 61_000).await.unwrap();
    assert_eq!(report.deleted_files, 5);
    assert_eq!(dirs.parquet_files("acme", "cpu").len(), 1);
    assert_eq!(scalar(&engine, &tenant, sql).await, before);
}

#[tokio::test]
async fn retention_drops_expired_days_from_catalog_then_disk() {
    let dirs = TestDirs::new(&["acme"]);
    std::fs::write(
        dirs.tenants().join("acme/tenant.yaml"),
        "tables:\n  cpu:\n    retention: 7d\n",
    )
    .unwrap();
    let (store, tenant) = open(&dirs, StorageConfig::default()).await;
    write_days(&tenant, 10).await;
    // "Now" is the end of day 10: days 0-2 end more than 7 days ago.
    let now_ms = (START_NS + 10 * DAY_NS) / 1_000_000;
    let report = tenant.maintain(now_ms).await.unwrap();
    assert_eq!(report.expired_files, 3);
    let engine = QueryEngine::new(Default::default());
    let min = scalar(&engine, &tenant, "SELECT min(time) AS t FROM cpu").await;
    assert!(min.contains("2024-01-04T00:00:00Z"), "{min}");
    tenant.maintain(now_ms + 120_000).await.unwrap();
    assert_eq!(dirs.parquet_files("acme", "cpu").len(), 7);
    drop(tenant);
    drop(store);

    // The catalog survives a reopen with the same live files.
    let (_store, tenant) = open(&dirs, StorageConfig::default()).await;
    assert_eq!(tenant.table("cpu").unwrap().stats().files, 7);
}

/// The live configuration owns tenant.yaml: a retention added while the store runs applies at
/// the next maintenance after the reload the file watcher makes — no restart — and a later
/// broken tenant.yaml keeps the last good settings.
#[tokio::test]
async fn a_retention_edit_applies_on_reload_without_restart() {
    let dirs = TestDirs::new(&["acme"]);
    let (store, tenant) = open(&dirs, StorageConfig::default()).await;
    let configs = opsboard::live::LiveConfigs::new(
        opsboard::config::ConfigDirs {
            tenants_dir: dirs.tenants(),
            panels_dir: dirs.root.path().join("panels"),
        },
        Default::default(),
        vec![],
        vec![],
    );
    write_days(&tenant, 10).await;
    let now_ms = (START_NS + 10 * DAY_NS) / 1_000_000;
    assert_eq!(tenant.maintain(now_ms).await.unwrap().expired_files, 0);

    let yaml = dirs.tenants().join("acme/tenant.yaml");
    std::fs::write(&yaml, "tables:\n  cpu:\n    retention: 7d\n").unwrap();
    assert_eq!(
        tenant.maintain(now_ms).await.unwrap().expired_files,
        0,
        "not before the reload"
    );
    configs.reload_all(&store).await;
    assert_eq!(tenant.maintain(now_ms).await.unwrap().expired_files, 3);

    std::fs::write(&yaml, "tables:\n  cpu:\n    retention: [7d\n").unwrap();
    configs.reload_all(&store).await;
    let retention = tenant.settings().tables["cpu"].retention;
    assert_eq!(
        retention.map(|r| r.0.as_secs()),
        Some(7 * 86_400),
        "last good kept"
    );

    // A declared column that contradicts stored data is refused; the stored type stays.
    std::fs::write(&yaml, "tables:\n  cpu:\n    fields: {usage_user: string}\n").unwrap();
    let refused = tenant.apply_settings(
        opsboard::config::TenantConfig::load(&dirs.tenants().join("acme")).unwrap(),
    );
    assert_eq!(refused.len(), 1, "{refused:?}");
    let kind = tenant.table("cpu").unwrap().schema().kind_of("usage_user");
    assert_eq!(kind.map(|k| k.describe()), Some("float field"));
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_dir_is_the_servers_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dirs = TestDirs::new(&["acme"]);
    std::fs::create_dir_all(dirs.data()).unwrap();
    std::fs::set_permissions(dirs.data(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_store, _tenant) = open(&dirs, StorageConfig::default()).await;
    let mode = std::fs::metadata(dirs.data()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[tokio::test]
async fn a_second_writer_cannot_open_the_data_dir() {
    let dirs = TestDirs::new(&["acme"]);
    let (_store, _tenant) = open(&dirs, StorageConfig::default()).await;
    let err = Store::open(
        StorageConfig::default(),
        &dirs.data(),
        &dirs.tenants(),
        OpenMode::ReadWrite,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    // Readers (the query CLI) may open it beside the writer.
    Store::open(
        StorageConfig::default(),
        &dirs.data(),
        &dirs.tenants(),
        OpenMode::ReadOnly,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flushes_during_concurrent_writes_never_lose_or_duplicate_rows() {
    let dirs = TestDirs::new(&["acme"]);
    let (_store, tenant) = open(&dirs, StorageConfig::default()).await;
    let writers: Vec<_> = (0..8i64)
        .map(|w| {
            let tenant = tenant.clone();
            tokio::spawn(async move {
                let mut generator = CpuGenerator::new(1, w as u64);
                for b in 0..40i64 {
                    // A unique timestamp per row: writer w, batch b.
                    let t = START_NS + (w * 1_000 + b) * 1_000_000_000;
                    tenant.write("cpu", generator.batch(&[t])).await.unwrap();
                }
            })
        })
        .collect();
    let flusher = {
        let tenant = tenant.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                tenant.persist_all().await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    flusher.await.unwrap();
    let engine = QueryEngine::new(Default::default());
    let sql = "SELECT count(*) AS n, count(DISTINCT time) AS d FROM cpu";
    // Every row once, whether it sits in the buffer or in Parquet.
    for flush_first in [false, true] {
        if flush_first {
            tenant.persist_all().await.unwrap();
        }
        let counts = scalar(&engine, &tenant, sql).await;
        assert!(counts.contains("| 320 | 320 |"), "{counts}");
    }
    assert_eq!(tenant.table("cpu").unwrap().stats().buffered_rows, 0);
}

#[tokio::test]
async fn memory_object_store_serves_flushed_files() {
    let dirs = TestDirs::new(&["acme"]);
    let config = StorageConfig {
        object_store: "memory://".into(),
        ..Default::default()
    };
    let (_store, tenant) = open(&dirs, config).await;
    write_days(&tenant, 2).await;
    assert!(
        dirs.parquet_files("acme", "cpu").is_empty(),
        "nothing on local disk"
    );
    assert_eq!(tenant.table("cpu").unwrap().stats().files, 2);
    let engine = QueryEngine::new(Default::default());
    let count = scalar(&engine, &tenant, "SELECT count(*) AS n FROM cpu").await;
    assert!(count.contains("| 192 |"), "{count}");
    let err = Store::open(
        StorageConfig {
            object_store: "gs://bucket".into(),
            ..Default::default()
        },
        &dirs.root.path().join("other"),
        &dirs.tenants(),
        OpenMode::ReadWrite,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("gs://bucket"), "{err}");
}

/// All tables' buffers together stay within their share of the memory budget: writers flush
/// and wait instead of growing the buffers, every acknowledged row is readable afterwards, and
/// a writer that cannot get room in time is refused (nothing written) rather than left growing.
#[tokio::test]
async fn buffers_of_all_tables_stay_within_their_budget() {
    let dirs = TestDirs::new(&["acme"]);
    let limit = 2 * 1024 * 1024;
    let config = StorageConfig {
        // Only the shared budget makes these buffers flush.
        flush_max_rows: usize::MAX / 4,
        flush_max_bytes: usize::MAX / 4,
        buffer_limit_bytes: limit,
        ..StorageConfig::default()
    };
    let (store, tenant) = open(&dirs, config).await;
    let mut generator = CpuGenerator::new(50, 7);
    let mut peak = 0;
    let mut largest_batch = 0;
    let mut written = 0;
    for i in 0..120i64 {
        let times: Vec<i64> = (0..10)
            .map(|s| START_NS + (i * 10 + s) * 1_000_000_000)
            .collect();
        let batch = generator.batch(&times);
        largest_batch = largest_batch.max(batch.get_array_memory_size());
        let table = if i % 2 == 0 { "cpu" } else { "cpu_b" };
        written += tenant.write(table, batch).await.unwrap();
        peak = peak.max(store.buffers().used());
    }
    assert!(
        peak <= limit + largest_batch,
        "peak {peak} over {limit} + {largest_batch}"
    );
    assert!(
        !dirs.parquet_files("acme", "cpu").is_empty(),
        "the budget made buffers flush"
    );
    let engine = QueryEngine::new(Default::default());
    let count = |table: &'static str| {
        let engine = &engine;
        let tenant = &tenant;
        async move {
            scalar(
                engine,
                tenant,
                &format!("SELECT count(*) AS n FROM {table}"),
            )
            .await
        }
    };
    let total: usize = [count("cpu").await, count("cpu_b").await]
        .iter()
        .map(|t| {
            t.lines()
                .filter_map(|l| {
                    l.trim_matches(|c| c == '|' || c == ' ')
                        .parse::<usize>()
                        .ok()
                })
                .sum::<usize>()
        })
        .sum();
    assert_eq!(total, written);
    tenant.persist_all().await.unwrap();
    assert_eq!(store.buffers().used(), 0, "flushed buffers are given back");
}

/// What `last_rows` must equal: the newest row of each host by a full scan.
const LASTPOINT: &str = "SELECT DISTINCT ON (hostname) * FROM cpu ORDER BY hostname, time DESC";
const LAST_ROWS: &str = "SELECT * FROM last_rows('cpu') ORDER BY hostname";

#[tokio::test]
async fn last_rows_equal_a_full_scan_through_late_writes_flushes_and_restarts() {
    let dirs = TestDirs::new(&["acme"]);
    let (store, tenant) = open(&dirs, StorageConfig::default()).await;
    let engine = QueryEngine::new(Default::default());
    let mut generator = CpuGenerator::new(20, 7);
    let mut rng = opsboard::generate::Rng::new(11);
    // Batches at random times within two days (late ones included), some flushed, one host
    // only in files, another only in the buffer.
    for i in 0..40 {
        let step = (rng.next_u64() % 2_880) as i64;
        let times = [START_NS + step * 60_000_000_000];
        tenant.write("cpu", generator.batch(&times)).await.unwrap();
        if i % 7 == 3 {
            tenant.persist_all().await.unwrap();
        }
    }
    let expected = scalar(&engine, &tenant, LASTPOINT).await;
    assert_eq!(scalar(&engine, &tenant, LAST_ROWS).await, expected);
    assert_eq!(expected.matches("host_").count(), 20, "{expected}");

    // A late row changes nothing; a newer one of a single host replaces only that host's.
    let late = generator.batch(&[START_NS - DAY_NS]);
    tenant.write("cpu", late).await.unwrap();
    assert_eq!(scalar(&engine, &tenant, LAST_ROWS).await, expected);
    let newer = generator.batch(&[START_NS + 3 * DAY_NS]).slice(0, 1);
    tenant.write("cpu", newer).await.unwrap();
    let after = scalar(&engine, &tenant, LASTPOINT).await;
    assert_ne!(after, expected);
    assert_eq!(scalar(&engine, &tenant, LAST_ROWS).await, after);

    // After a restart (some rows in files, the newest only in the WAL) the cache is rebuilt.
    tenant.persist_all().await.unwrap();
    let tail = generator.batch(&[START_NS + 4 * DAY_NS]).slice(5, 3);
    tenant.write("cpu", tail).await.unwrap();
    let before_restart = scalar(&engine, &tenant, LASTPOINT).await;
    drop(tenant);
    drop(store);
    let (_store, tenant) = open(&dirs, StorageConfig::default()).await;
    assert_eq!(scalar(&engine, &tenant, LAST_ROWS).await, before_restart);
    assert_eq!(scalar(&engine, &tenant, LASTPOINT).await, before_restart);
}

#[tokio::test]
async fn last_rows_start_from_the_snapshot_maintenance_left() {
    let dirs = TestDirs::new(&["acme"]);
    let (store, tenant) = open(&dirs, StorageConfig::default()).await;
    let engine = QueryEngine::new(Default::default());
    let mut generator = CpuGenerator::new(20, 7);
    for day in 0..3 {
        let times: Vec<i64> = (0..6)
            .map(|h| START_NS + day * DAY_NS + h * 3_600_000_000_000)
            .collect();
        tenant.write("cpu", generator.batch(&times)).await.unwrap();
        tenant.persist_all().await.unwrap();
    }
    let now_ms = START_NS / 1_000_000 + 4 * 86_400_000;
    // The table was created here: its cache holds every row without reading a file.
    let snapshots = |report: opsboard::storage::MaintenanceReport| report.last_rows_snapshots;
    assert_eq!(snapshots(tenant.maintain(now_ms).await.unwrap()), 1);
    assert_eq!(
        snapshots(tenant.maintain(now_ms).await.unwrap()),
        0,
        "unchanged"
    );
    assert_eq!(tenant.table("cpu").unwrap().last_rows_files_read(), 0);

    // After the snapshot: a newer row of two hosts flushed to a new file, a late row (older
    // than what the snapshot holds), and a newer one only in the WAL.
    let newer = generator.batch(&[START_NS + 3 * DAY_NS]).slice(0, 2);
    tenant.write("cpu", newer).await.unwrap();
    tenant
        .write("cpu", generator.batch(&[START_NS - DAY_NS]))
        .await
        .unwrap();
    tenant.persist_all().await.unwrap();
    let wal_only = generator.batch(&[START_NS + 4 * DAY_NS]).slice(7, 1);
    tenant.write("cpu", wal_only).await.unwrap();
    let expected = scalar(&engine, &tenant, LASTPOINT).await;
    let files = dirs.parquet_files("acme", "cpu").len();
    drop(tenant);
    drop(store);

    let (store, tenant) = open(&dirs, StorageConfig::default()).await;
    // Until the files are read in, the cache holds only the WAL's rows: nothing is saved.
    assert_eq!(snapshots(tenant.maintain(now_ms).await.unwrap()), 0);
    assert_eq!(scalar(&engine, &tenant, LAST_ROWS).await, expected);
    let table = tenant.table("cpu").unwrap();
    // The flush after the snapshot wrote two files (the newer rows' day and the late row's).
    assert_eq!(table.last_rows_files_read(), 2, "only those, of {files}");

    // An unreadable snapshot costs only the head start: every file is read.
    let snapshot = dirs.data().join("objects/acme/cpu/_last_rows.parquet");
    assert!(snapshot.exists(), "{snapshot:?}");
    std::fs::write(&snapshot, b"not parquet").unwrap();
    drop((table, tenant, store));
    let (_store, tenant) = open(&dirs, StorageConfig::default()).await;
    assert_eq!(scalar(&engine, &tenant, LAST_ROWS).await, expected);
    assert_eq!(
        tenant.table("cpu").unwrap().last_rows_files_read() as usize,
        files
    );
}

#[tokio::test]
async fn last_rows_leave_out_series_older_than_the_retention() {
    let dirs = TestDirs::new(&["acme"]);
    std::fs::write(
        dirs.tenants().join("acme/tenant.yaml"),
        "tables:\n  cpu:\n    retention: 1d\n",
    )
    .unwrap();
    let (_store, tenant) = open(&dirs, StorageConfig::default()).await;
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
    // Hosts 0-4 wrote two days ago and are past the retention; host 0 of another fleet is fresh.
    tenant
        .write("cpu", CpuGenerator::new(5, 1).batch(&[now - 2 * DAY_NS]))
        .await
        .unwrap();
    tenant
        .write(
            "cpu",
            CpuGenerator::new(1, 2).batch(&[now - 60_000_000_000]),
        )
        .await
        .unwrap();
    let engine = QueryEngine::new(Default::default());
    let rows = scalar(
        &engine,
        &tenant,
        "SELECT count(*) AS n FROM last_rows('cpu')",
    )
    .await;
    assert!(rows.contains("| 1 |"), "{rows}");
    let err = engine
        .collect(&tenant, "SELECT * FROM last_rows('nope')")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no table named 'nope'"), "{err}");
}
