//! Rollups: answers read from them equal the raw answers — over random rows, ranges that cut
//! buckets, late writes into rolled-up buckets, rows still in the buffer, compaction, a changed
//! declaration and retention.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow::compute::cast;
use opsboard::config::{QueryConfig, StorageConfig};
use opsboard::generate::Rng;
use opsboard::query::QueryEngine;
use opsboard::storage::{MaintenanceReport, OpenMode, Store, TenantStore, tag_type};
use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};

use super::common::TestDirs;
use super::{START_NS, open};

const MINUTE_NS: i64 = 60_000_000_000;
const HOSTS: [&str; 3] = ["a", "b", "c"];

fn declare(dirs: &TestDirs, rollups: &str) {
    std::fs::write(
        dirs.tenants().join("acme/tenant.yaml"),
        format!(
            "tables:\n  cpu:\n    tags: [host, dc]\n    fields: {{usage: float, errors: integer}}\n    rollups: [{rollups}]\n"
        ),
    )
    .unwrap();
}

/// A store opened afresh and one maintenance pass on its tenant, before anything else (the
/// live configuration) pushed its settings — as a server's first pass can be.
async fn maintained_on_open(
    dirs: &TestDirs,
    config: &StorageConfig,
    now_ms: i64,
) -> (Arc<Store>, Arc<TenantStore>, MaintenanceReport) {
    let store = Store::open(
        config.clone(),
        &dirs.data(),
        &dirs.tenants(),
        OpenMode::ReadWrite,
    )
    .await
    .unwrap();
    let tenant = store.tenant("acme").await.unwrap();
    let report = tenant.maintain(now_ms).await.unwrap();
    (store, tenant, report)
}

/// `n` rows at random times in `[from, from + span)`, with some null values.
fn rows(rng: &mut Rng, n: usize, from: i64, span: i64) -> RecordBatch {
    let mut time = vec![];
    let (mut host, mut dc, mut usage, mut errors) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        time.push(from + (rng.next_u64() % span as u64) as i64);
        let h = (rng.next_u64() % 3) as usize;
        host.push(HOSTS[h]);
        dc.push(if h == 2 { "west" } else { "east" });
        usage.push(
            (!rng.next_u64().is_multiple_of(10)).then(|| (rng.next_u64() % 10_000) as f64 / 7.0),
        );
        errors
            .push((!rng.next_u64().is_multiple_of(5)).then(|| (rng.next_u64() % 100) as i64 - 20));
    }
    let tag =
        |values: Vec<&str>| -> ArrayRef { cast(&StringArray::from(values), &tag_type()).unwrap() };
    RecordBatch::try_from_iter(vec![
        (
            "time",
            Arc::new(TimestampNanosecondArray::from(time)) as ArrayRef,
        ),
        ("host", tag(host)),
        ("dc", tag(dc)),
        ("usage", Arc::new(Float64Array::from(usage)) as ArrayRef),
        ("errors", Arc::new(Int64Array::from(errors)) as ArrayRef),
    ])
    .unwrap()
}

fn engines() -> (QueryEngine, QueryEngine) {
    let raw = QueryConfig {
        rollups: false,
        ..Default::default()
    };
    (QueryEngine::new(Default::default()), QueryEngine::new(raw))
}

/// One answer's rows, sorted by their text cells; floats kept as numbers, so the same sums taken
/// in another order compare equal within 1e-9.
#[derive(Debug)]
struct Answer(Vec<Vec<Cell>>);

#[derive(Debug, Clone)]
enum Cell {
    Text(String),
    Float(f64),
}

impl PartialEq for Answer {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &Cell, b: &Cell| match (a, b) {
            (Cell::Text(x), Cell::Text(y)) => x == y,
            (Cell::Float(x), Cell::Float(y)) => {
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
            }
            _ => false,
        };
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(r, s)| r.len() == s.len() && r.iter().zip(s).all(|(a, b)| same(a, b)))
    }
}

async fn answer(engine: &QueryEngine, tenant: &Arc<TenantStore>, sql: &str) -> Answer {
    let batches = engine
        .collect(tenant, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows = vec![];
    for b in &batches {
        for row in 0..b.num_rows() {
            let cells: Vec<Cell> = b
                .columns()
                .iter()
                .map(|c| {
                    let text = arrow::util::display::array_value_to_string(c, row).unwrap();
                    match c.data_type() {
                        arrow::datatypes::DataType::Float64 if !c.is_null(row) => {
                            Cell::Float(text.parse().unwrap())
                        }
                        _ => Cell::Text(text),
                    }
                })
                .collect();
            rows.push(cells);
        }
    }
    let key = |r: &Vec<Cell>| -> Vec<String> {
        r.iter()
            .filter_map(|c| match c {
                Cell::Text(t) => Some(t.clone()),
                Cell::Float(_) => None,
            })
            .collect()
    };
    rows.sort_by_key(key);
    Answer(rows)
}

async fn explain(engine: &QueryEngine, tenant: &Arc<TenantStore>, sql: &str) -> String {
    let batches = engine
        .collect(tenant, &format!("EXPLAIN {sql}"))
        .await
        .unwrap();
    arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

fn ts(ns: i64) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(ns);
    format!(
        "'{}'",
        t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    )
}

#[tokio::test]
async fn rollup_answers_equal_raw_answers_over_random_rows_and_ranges() {
    let dirs = TestDirs::new(&["acme"]);
    declare(&dirs, "{intervals: [1m, 1h], group_by: [host, dc]}");
    let (_store, tenant) = open(&dirs, StorageConfig::default()).await;
    let (rolled, raw) = engines();
    let mut rng = Rng::new(7);
    let span = 2 * 86_400_000_000_000;
    // Rolled-up files, then late rows into the same buckets (a second file, not yet rolled up),
    // then rows left in the buffer.
    tenant
        .write("cpu", rows(&mut rng, 4000, START_NS, span))
        .await
        .unwrap();
    tenant.persist_all().await.unwrap();
    let now_ms = START_NS / 1_000_000 + 3 * 86_400_000;
    let report = tenant.maintain(now_ms).await.unwrap();
    assert!(report.rollup_files >= 2, "{report:?}");
    tenant
        .write("cpu", rows(&mut rng, 500, START_NS, span))
        .await
        .unwrap();
    tenant.persist_all().await.unwrap();
    tenant
        .write("cpu", rows(&mut rng, 300, START_NS, span))
        .await
        .unwrap();
    let aggregates = [
        "avg(usage)",
        "min(usage)",
        "max(errors)",
        "sum(errors)",
        "sum(usage)",
        "count(usage)",
        "count(*)",
    ];
    let mut rewritten = 0;
    for case in 0..60 {
        let from = START_NS + (rng.next_u64() % span as u64) as i64 - 3_600_000_000_000;
        let to = from + (rng.next_u64() % (span as u64 / 2)) as i64;
        let agg = aggregates[case % aggregates.len()];
        let agg2 = aggregates[(case * 3 + 1) % aggregates.len()];
        let bucket = ["1 minute", "5 minutes", "1 hour", "3 hours"][case % 4];
        let filter = match case % 3 {
            0 => String::new(),
            1 => format!(" AND host = '{}'", HOSTS[case % 3]),
            _ => " AND dc IN ('east') AND host <> 'b'".into(),
        };
        let range = format!("time >= {} AND time < {}", ts(from), ts(to));
        let sql = match case % 4 {
            0 => format!("SELECT {agg} AS v, {agg2} AS w FROM cpu WHERE {range}{filter}"),
            1 => format!("SELECT host, {agg} AS v FROM cpu WHERE {range}{filter} GROUP BY host"),
            2 => format!(
                "SELECT date_bin(INTERVAL '{bucket}', time) AS t, host, {agg} AS v, {agg2} AS w \
                 FROM cpu WHERE {range}{filter} GROUP BY 1, 2"
            ),
            _ => format!(
                "SELECT date_trunc('hour', time) AS t, {agg} AS v FROM cpu WHERE {range}{filter} \
                 GROUP BY 1"
            ),
        };
        let expected = answer(&raw, &tenant, &sql).await;
        assert_eq!(answer(&rolled, &tenant, &sql).await, expected, "{sql}");
        if explain(&rolled, &tenant, &sql).await.contains("cpu@") {
            rewritten += 1;
        }
    }
    assert!(
        rewritten >= 40,
        "only {rewritten} of 60 queries read the rollup"
    );
}

#[tokio::test]
async fn only_what_the_rollup_answers_exactly_is_rewritten() {
    let dirs = TestDirs::new(&["acme"]);
    declare(
        &dirs,
        "{intervals: [10m], group_by: [host], fields: [usage], aggregates: [avg, max]}",
    );
    let (_store, tenant) = open(&dirs, StorageConfig::default()).await;
    let mut rng = Rng::new(3);
    tenant
        .write("cpu", rows(&mut rng, 2000, START_NS, 86_400_000_000_000))
        .await
        .unwrap();
    tenant.persist_all().await.unwrap();
    tenant.maintain(START_NS / 1_000_000).await.unwrap();
    let (rolled, _) = engines();
    let range = format!(
        "time >= {} AND time < {}",
        ts(START_NS + 7 * MINUTE_NS),
        ts(START_NS + 600 * MINUTE_NS)
    );
    let read = |sql: String| {
        let (rolled, tenant) = (&rolled, &tenant);
        async move { explain(rolled, tenant, &sql).await.contains("cpu@600s_") }
    };
    let plan = explain(
        &rolled,
        &tenant,
        &format!("SELECT host, avg(usage), max(usage) FROM cpu WHERE {range} GROUP BY host"),
    )
    .await;
    assert!(plan.contains("cpu@600s_"), "{plan}");
    assert!(read(format!("SELECT date_bin(INTERVAL '30 minutes', time), avg(usage) FROM cpu WHERE {range} GROUP BY 1")).await);
    for not_exact in [
        format!("SELECT min(usage) FROM cpu WHERE {range}"),
        format!("SELECT avg(errors) FROM cpu WHERE {range}"),
        format!("SELECT dc, avg(usage) FROM cpu WHERE {range} GROUP BY dc"),
        format!("SELECT avg(usage) FROM cpu WHERE {range} AND dc = 'east'"),
        format!("SELECT avg(usage) FROM cpu WHERE {range} AND usage > 3"),
        format!(
            "SELECT date_bin(INTERVAL '15 minutes', time), avg(usage) FROM cpu WHERE {range} GROUP BY 1"
        ),
        format!(
            "SELECT date_bin(INTERVAL '10 minutes', time, TIMESTAMP '2024-01-01T00:05:00'), avg(usage) FROM cpu WHERE {range} GROUP BY 1"
        ),
        format!("SELECT approx_percentile_cont(usage, 0.95) FROM cpu WHERE {range}"),
        format!("SELECT count(DISTINCT usage) FROM cpu WHERE {range}"),
        // A bound at the very end of time: read raw, nothing wraps around.
        format!(
            "SELECT avg(usage) FROM cpu WHERE time >= {} AND time <= '2262-04-11T23:47:16.854775807Z'",
            ts(START_NS)
        ),
    ] {
        assert!(!read(not_exact.clone()).await, "{not_exact}");
    }
}

/// Compaction, a restart, a changed declaration (old rollup dropped, new one filled from the
/// files) and retention each keep rollup answers equal to raw ones.
#[tokio::test]
async fn rollups_follow_compaction_restarts_redeclaration_and_retention() {
    let dirs = TestDirs::new(&["acme"]);
    declare(&dirs, "{intervals: [1h], group_by: [host]}");
    let config = StorageConfig {
        compaction_min_files: 2,
        ..Default::default()
    };
    let (store, tenant) = open(&dirs, config.clone()).await;
    let mut rng = Rng::new(11);
    let day = 86_400_000_000_000;
    for _ in 0..3 {
        tenant
            .write("cpu", rows(&mut rng, 400, START_NS, 3 * day))
            .await
            .unwrap();
        tenant.persist_all().await.unwrap();
    }
    let (rolled, raw) = engines();
    let sql = format!(
        "SELECT date_bin(INTERVAL '2 hours', time) AS t, host, avg(usage), count(*), max(errors) \
         FROM cpu WHERE time >= {} AND time < {} GROUP BY 1, 2",
        ts(START_NS + 1_234_567_890),
        ts(START_NS + 3 * day - 7_000_000_000)
    );
    let now_ms = START_NS / 1_000_000 + 4 * 86_400_000;
    // A pass compacts each day's raw files, then rolls the result up; later files are rolled
    // up one by one, and the pass after merges the raw files held alike and combines each
    // day's rollup files into one.
    let report = tenant.maintain(now_ms).await.unwrap();
    assert!(
        report.compacted_files >= 3 && report.rollup_files >= 3,
        "{report:?}"
    );
    for _ in 0..2 {
        tenant
            .write("cpu", rows(&mut rng, 300, START_NS, 3 * day))
            .await
            .unwrap();
        tenant.persist_all().await.unwrap();
    }
    let expected = answer(&raw, &tenant, &sql).await;
    tenant.maintain(now_ms).await.unwrap();
    tenant.maintain(now_ms).await.unwrap();
    let snapshot = tenant.table("cpu").unwrap().snapshot().unwrap();
    assert_eq!(snapshot.files.len(), 3, "{:?}", snapshot.files);
    assert_eq!(snapshot.rollups.values().flatten().count(), 3);
    assert!(explain(&rolled, &tenant, &sql).await.contains("cpu@3600s_"));
    assert_eq!(answer(&rolled, &tenant, &sql).await, expected);
    drop(tenant);
    drop(store);

    // A restart keeps the rollup and what it holds.
    let (store, tenant) = open(&dirs, config.clone()).await;
    assert!(explain(&rolled, &tenant, &sql).await.contains("cpu@3600s_"));
    assert_eq!(answer(&rolled, &tenant, &sql).await, expected);
    drop(tenant);
    drop(store);

    // A maintenance pass on a tenant just opened — before anything pushed its settings, as a
    // server's first pass can be — still knows the declaration: the rollup stays.
    let (bare, tenant, report) = maintained_on_open(&dirs, &config, now_ms).await;
    assert_eq!(report.rollup_files, 0, "{report:?}");
    assert!(explain(&rolled, &tenant, &sql).await.contains("cpu@3600s_"));
    drop(tenant);
    drop(bare);
    // A tenant.yaml that does not load: maintenance waits rather than drop what it declared.
    let yaml = dirs.tenants().join("acme/tenant.yaml");
    let good = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, "tables: [not, a, map\n").unwrap();
    let (bare, tenant, report) = maintained_on_open(&dirs, &config, now_ms).await;
    assert_eq!(
        report,
        Default::default(),
        "nothing done without the settings"
    );
    drop(tenant);
    drop(bare);
    std::fs::write(&yaml, good).unwrap();
    let (store, tenant) = open(&dirs, config.clone()).await;
    assert!(explain(&rolled, &tenant, &sql).await.contains("cpu@3600s_"));
    assert_eq!(answer(&rolled, &tenant, &sql).await, expected);
    drop(tenant);
    drop(store);

    // Another declaration is another rollup: the old one goes, the new one fills from the files.
    declare(&dirs, "{intervals: [1h], group_by: [host, dc]}");
    let (_store, tenant) = open(&dirs, config).await;
    assert!(
        !explain(&rolled, &tenant, &sql).await.contains("cpu@"),
        "nothing held yet"
    );
    assert_eq!(answer(&rolled, &tenant, &sql).await, expected);
    let report = tenant.maintain(now_ms).await.unwrap();
    assert!(report.rollup_files >= 3, "{report:?}");
    let manifest = tenant.table("cpu").unwrap().snapshot().unwrap();
    assert_eq!(manifest.rollups.len(), 1, "the old rollup was dropped");
    assert!(explain(&rolled, &tenant, &sql).await.contains("cpu@3600s_"));
    assert_eq!(answer(&rolled, &tenant, &sql).await, expected);

    // Retention: a raw day past it goes, then its rollup files; what is left still agrees.
    let mut settings = (*tenant.settings()).clone();
    settings.tables.get_mut("cpu").unwrap().retention =
        Some(opsboard::config::HumanDuration::from_secs(2 * 86_400));
    tenant.apply_settings(settings);
    let report = tenant.maintain(now_ms).await.unwrap();
    assert!(
        report.expired_files >= 1 && report.rollup_files >= 1,
        "{report:?}"
    );
    let left = tenant.table("cpu").unwrap().snapshot().unwrap();
    let raw_days: std::collections::BTreeSet<i64> =
        left.files.iter().map(|f| f.min_time / day).collect();
    let rollup_days: std::collections::BTreeSet<i64> = left
        .rollups
        .values()
        .flatten()
        .map(|f| f.min_time / day)
        .collect();
    assert_eq!(
        raw_days, rollup_days,
        "a rollup day outlived or preceded its raw day"
    );
    assert_eq!(
        answer(&rolled, &tenant, &sql).await,
        answer(&raw, &tenant, &sql).await
    );
}

/// Of two rollups that can answer, the one with fewer rows in range is read.
#[tokio::test]
async fn the_smallest_rollup_that_answers_is_read() {
    let dirs = TestDirs::new(&["acme"]);
    declare(
        &dirs,
        "{intervals: [1m], group_by: [host, dc]}, {intervals: [1m]}",
    );
    let (_store, tenant) = open(&dirs, StorageConfig::default()).await;
    let mut rng = Rng::new(5);
    let day = 86_400_000_000_000;
    tenant
        .write("cpu", rows(&mut rng, 3000, START_NS, day))
        .await
        .unwrap();
    tenant.persist_all().await.unwrap();
    tenant.maintain(START_NS / 1_000_000).await.unwrap();
    let defs = tenant.rollups_of("cpu");
    let (by_host, all) = (&defs[0].name, &defs[1].name);
    let (rolled, raw) = engines();
    let range = format!("time >= {} AND time < {}", ts(START_NS), ts(START_NS + day));
    for (sql, reads) in [
        (
            format!(
                "SELECT date_bin(INTERVAL '5 minutes', time), max(usage) FROM cpu WHERE {range} GROUP BY 1"
            ),
            all,
        ),
        (
            format!("SELECT host, sum(errors) FROM cpu WHERE {range} GROUP BY host"),
            by_host,
        ),
        (
            format!("SELECT count(*) FROM cpu WHERE {range} AND host = 'a'"),
            by_host,
        ),
    ] {
        let plan = explain(&rolled, &tenant, &sql).await;
        assert!(plan.contains(&format!("cpu@{reads}")), "{sql}\n{plan}");
        assert_eq!(
            answer(&rolled, &tenant, &sql).await,
            answer(&raw, &tenant, &sql).await
        );
    }
}

/// The raw rows of a range's partial buckets come from the files of its first and last day
/// only: a week-long range read from a rollup does not decode the raw week in between.
#[tokio::test]
async fn partial_buckets_read_only_the_files_at_the_ends() {
    let dirs = TestDirs::new(&["acme"]);
    declare(&dirs, "{intervals: [1m], group_by: [host, dc]}");
    let (_store, tenant) = open(&dirs, StorageConfig::default()).await;
    let mut rng = Rng::new(9);
    let day = 86_400_000_000_000;
    for d in 0..5 {
        let batch = rows(&mut rng, 2000, START_NS + d * day, day);
        tenant.write("cpu", batch).await.unwrap();
        tenant.persist_all().await.unwrap();
    }
    tenant.maintain(START_NS / 1_000_000).await.unwrap();
    let (rolled, raw) = engines();
    // Both ends off the minute grid, on days 0 and 4.
    let (from, to) = (
        START_NS + 90 * MINUTE_NS + 7,
        START_NS + 4 * day + 30 * MINUTE_NS + 3,
    );
    let sql = format!(
        "SELECT host, date_bin(INTERVAL '1 hour', time) AS t, avg(usage), count(*) FROM cpu \
         WHERE time >= {} AND time < {} GROUP BY 1, 2",
        ts(from),
        ts(to)
    );
    let before = rolled.parquet_files_scanned();
    let answered = answer(&rolled, &tenant, &sql).await;
    let read = rolled.parquet_files_scanned() - before;
    assert_eq!(answered, answer(&raw, &tenant, &sql).await);
    assert_eq!(rolled.rollup_reads(), 1);
    // The rollup's files of the five days, and the raw files of days 0 and 4.
    let rollup_files = tenant
        .table("cpu")
        .unwrap()
        .snapshot()
        .unwrap()
        .rollups
        .values()
        .map(Vec::len)
        .sum::<usize>();
    assert_eq!(read as usize, rollup_files + 2, "{read} files read");
    // What every long-range panel reads is written to decode fast (LZ4); raw rows, the bulk of
    // what is stored, small (ZSTD).
    let codecs = |files: Vec<std::path::PathBuf>| {
        assert!(!files.is_empty());
        let mut codecs = vec![];
        for path in files {
            let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
            for group in reader.metadata().row_groups() {
                codecs.extend(group.columns().iter().map(|c| c.compression()));
            }
        }
        codecs
    };
    let rollups = codecs(dirs.rollup_files("acme", "cpu"));
    assert!(
        rollups.iter().all(|c| *c == Compression::LZ4_RAW),
        "{rollups:?}"
    );
    let raw = codecs(dirs.parquet_files("acme", "cpu"));
    assert!(
        raw.iter().all(|c| matches!(c, Compression::ZSTD(_))),
        "{raw:?}"
    );
}
