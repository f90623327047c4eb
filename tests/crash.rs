//! Durability with a real server process: SIGKILL during concurrent writes loses no row that
//! got a 2xx, a torn WAL tail is cut at start without losing earlier records, and a small
//! `memory.budget` holds (resident memory sampled) under sustained writes and a compaction.

mod common;

use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use common::TestDirs;
use parking_lot::Mutex;

struct Process {
    child: Child,
    url: String,
}

fn spawn_server(dirs: &TestDirs) -> Process {
    let (child, url) = common::spawn_opsboard(dirs, &[]);
    Process { child, url }
}

async fn count(client: &reqwest::Client, url: &str, sql: &str) -> i64 {
    let resp = client
        .post(format!("{url}/api/v1/tenants/acme/query"))
        .json(&serde_json::json!({ "sql": sql }))
        .send()
        .await
        .expect("query");
    assert_eq!(resp.status().as_u16(), 200);
    let rows: serde_json::Value = resp.json().await.expect("json");
    rows[0]["n"].as_i64().expect("n")
}

async fn write_torn(client: &reqwest::Client, url: &str, body: String) -> u16 {
    let resp = client
        .post(format!("{url}/api/v1/tenants/acme/write/torn"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("write");
    resp.status().as_u16()
}

const WRITERS: usize = 4;
const ROWS_PER_BATCH: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_writes_loses_no_acknowledged_row() {
    let dirs = TestDirs::new(&["acme"]);
    let client = common::client_with_key(&common::admin_key(&dirs.config()).await);
    // (writer, batch) pairs that got a 200, across all runs.
    let acked: Arc<Mutex<Vec<(usize, u64)>>> = Arc::default();
    let mut next_batch = [0u64; WRITERS];
    for round in 0..5 {
        let mut server = spawn_server(&dirs);
        let mut tasks = vec![];
        for (w, first) in next_batch.iter().copied().enumerate() {
            let (client, url, acked) = (client.clone(), server.url.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                let mut b = first;
                // Bounded: stops by itself when the server dies or after 10,000 batches.
                while b < first + 10_000 {
                    let body: String = (0..ROWS_PER_BATCH)
                        .map(|i| {
                            format!(
                                "{{\"time\":{},\"writer\":\"w{w}\",\"batch\":{b},\"i\":{i}}}\n",
                                b * 1000 + i as u64
                            )
                        })
                        .collect();
                    let resp = client
                        .post(format!("{url}/api/v1/tenants/acme/write/crash"))
                        .header("content-type", "application/x-ndjson")
                        .body(body)
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status().is_success() => acked.lock().push((w, b)),
                        _ => break,
                    }
                    b += 1;
                }
                b
            }));
        }
        tokio::time::sleep(Duration::from_millis(400 + round * 150)).await;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reap");
        for (w, t) in tasks.into_iter().enumerate() {
            // Batch numbers are never reused, even for writes whose answer was lost.
            next_batch[w] = t.await.expect("writer") + 1;
        }

        let server = spawn_server(&dirs);
        let acked_now = acked.lock().clone();
        assert!(
            !acked_now.is_empty(),
            "round {round}: no write was acknowledged"
        );
        let total = count(&client, &server.url, "SELECT count(*) AS n FROM crash").await;
        assert!(
            total >= (acked_now.len() * ROWS_PER_BATCH) as i64,
            "round {round}: {total} rows < acknowledged"
        );
        for w in 0..WRITERS {
            let mine: Vec<u64> = acked_now
                .iter()
                .filter(|(x, _)| *x == w)
                .map(|(_, b)| *b)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let list = mine
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let sql = format!(
                "SELECT count(*) AS n FROM crash WHERE writer = 'w{w}' AND batch IN ({list})"
            );
            let found = count(&client, &server.url, &sql).await;
            assert_eq!(
                found,
                (mine.len() * ROWS_PER_BATCH) as i64,
                "round {round}, writer {w}: acknowledged rows missing"
            );
        }
        let mut server = server;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reap");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_wal_tail_is_cut_and_earlier_records_survive() {
    let dirs = TestDirs::new(&["acme"]);
    let client = common::client_with_key(&common::admin_key(&dirs.config()).await);
    let mut server = spawn_server(&dirs);
    for b in 0..10 {
        let body: String = (0..10)
            .map(|i| format!("{{\"time\":{},\"batch\":{b}}}\n", b * 100 + i))
            .collect();
        assert_eq!(write_torn(&client, &server.url, body).await, 200);
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let segments = dirs.wal_segments("acme", "torn");
    let newest = segments.last().expect("a WAL segment");
    let len = std::fs::metadata(newest).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .unwrap();
    f.set_len(len - 7).unwrap();
    drop(f);

    let mut server = spawn_server(&dirs);
    let n = count(&client, &server.url, "SELECT count(*) AS n FROM torn").await;
    assert_eq!(n, 90, "the last record is cut, the nine before it stay");
    let n = count(
        &client,
        &server.url,
        "SELECT count(*) AS n FROM torn WHERE batch = 9",
    )
    .await;
    assert_eq!(n, 0);
    // The server keeps working after the cut, and a restart replays cleanly.
    let body = "{\"time\":5000,\"batch\":10}\n".to_string();
    assert_eq!(write_torn(&client, &server.url, body).await, 200);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let mut server = spawn_server(&dirs);
    assert_eq!(
        count(&client, &server.url, "SELECT count(*) AS n FROM torn").await,
        91
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_buffers_to_parquet_before_exit() {
    let dirs = TestDirs::new(&["acme"]);
    let client = common::client_with_key(&common::admin_key(&dirs.config()).await);
    let mut server = spawn_server(&dirs);
    let body: String = (0..100)
        .map(|i| format!("{{\"time\":{i},\"v\":{i}}}\n"))
        .collect();
    assert_eq!(write_torn(&client, &server.url, body).await, 200);
    assert!(dirs.parquet_files("acme", "torn").is_empty());
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = server.child.wait().expect("wait");
    assert!(exit.success(), "{exit:?}");
    assert_eq!(dirs.parquet_files("acme", "torn").len(), 1);
    assert!(dirs.wal_segments("acme", "torn").is_empty());
    let mut server = spawn_server(&dirs);
    assert_eq!(
        count(&client, &server.url, "SELECT count(*) AS n FROM torn").await,
        100
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

/// The resident memory a server may hold above `memory.budget`: the program itself (an
/// unoptimised test build maps more of itself), thread stacks, Parquet metadata and allocator
/// slack. Documented in README ("Sizing memory").
const OVERHEAD: u64 = 128 * 1024 * 1024;
const BUDGET: u64 = 256 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_memory_budget_holds_under_sustained_writes_and_compaction() {
    let dirs = TestDirs::new(&["acme"]);
    let config = dirs.root.path().join("opsboard.yaml");
    // Only the budget flushes (row, byte and age limits far away); compaction runs as soon as
    // a day has three files.
    std::fs::write(
        &config,
        format!(
            "memory:\n  budget: {BUDGET}\nstorage:\n  flush_max_rows: 100000000\n  \
             flush_max_bytes: 10000000000\n  flush_max_age: 1h\n  flush_check_interval: 100ms\n  \
             maintenance_interval: 1s\n  compaction_min_files: 3\n  \
             compaction_target_rows: 100000000\n  delete_grace: 1s\n"
        ),
    )
    .unwrap();
    let client = common::client_with_key(&common::admin_key(&dirs.config()).await);
    let (mut child, url) =
        common::spawn_opsboard(&dirs, &["--config", config.to_str().expect("utf-8 path")]);
    let pid = child.id();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(rss) = rss_bytes(pid) {
                    peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // Four writers, 5,000-row TSBS bodies (500 hosts × 10 steps), all within one UTC day.
    let day_start = 1_704_067_200_000_000_000_i64;
    let mut writers = vec![];
    for w in 0..WRITERS as i64 {
        let (client, url) = (client.clone(), url.clone());
        writers.push(tokio::spawn(async move {
            let mut generator = opsboard::generate::CpuGenerator::new(500, w as u64);
            let (mut acked, mut pushed_back) = (0u64, 0u64);
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            let mut step = 0i64;
            while std::time::Instant::now() < deadline {
                let times: Vec<i64> = (0..10)
                    .map(|i| day_start + ((step * 10 + i) * 4 + w) * 1_000_000_000)
                    .collect();
                let mut body = vec![];
                generator.ndjson(&times, &mut body);
                loop {
                    let resp = client
                        .post(format!("{url}/api/v1/tenants/acme/write/cpu?precision=ns"))
                        .header("content-type", "application/x-ndjson")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("write");
                    match resp.status().as_u16() {
                        200..=299 => break,
                        503 => {
                            assert!(resp.headers().contains_key("retry-after"));
                            pushed_back += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        other => panic!(
                            "write answered {other}: {}",
                            resp.text().await.unwrap_or_default()
                        ),
                    }
                }
                acked += 5_000;
                step += 1;
            }
            (acked, pushed_back)
        }));
    }
    let (mut acked, mut pushed_back) = (0, 0);
    for w in writers {
        let (a, p) = w.await.expect("writer");
        acked += a;
        pushed_back += p;
    }
    // Let flushes and compaction settle: the day ends as few files.
    let day_dir = dirs.data().join("objects/acme/cpu/2024-01-01");
    let settled = std::time::Instant::now() + Duration::from_secs(90);
    let files = loop {
        let files = std::fs::read_dir(&day_dir).map(|d| d.count()).unwrap_or(0);
        let total = count(&client, &url, "SELECT count(*) AS n FROM cpu").await;
        assert_eq!(
            total as u64, acked,
            "every acknowledged row is readable, none twice"
        );
        if (1..=2).contains(&files) || std::time::Instant::now() > settled {
            break files;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().expect("sampler");
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "acked {acked} rows, {pushed_back} pushed back, {files} files left, peak RSS {} MiB",
        peak >> 20
    );
    assert!(acked >= 400_000, "writes kept going: {acked} rows");
    assert!(
        (1..=2).contains(&files),
        "compaction merged the day: {files} files"
    );
    assert!(
        peak <= BUDGET + OVERHEAD,
        "peak resident {} MiB over budget {} MiB + overhead {} MiB",
        peak >> 20,
        BUDGET >> 20,
        OVERHEAD >> 20
    );
}
