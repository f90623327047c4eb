//! End-to-end figures, printed as plain lines (a bench binary, not criterion: each step is
//! long and runs once or a few times).
//!
//! 1. HTTP write throughput with fsync: 2 concurrent clients posting the same TSBS rows (400
//!    hosts × 12 steps = 4,800 per body) to a server on loopback, once per protocol: NDJSON,
//!    line protocol, Prometheus remote write (2,000 samples per request, Prometheus's default)
//!    and OTLP metrics (one gauge per field). `OPSBOARD_BENCH_WRITE_ROWS` (default 1M).
//! 2. Persist rate: the same store flushing its buffer to Parquet.
//! 3. Rollup query: average usage_user per host per 10-minute bucket over 24 h of a
//!    400-host × 3-day × 10 s data set (≈10.4M rows) from Parquet, warm, and the same SQL in DuckDB
//!    (`pip install duckdb`) on the same files; both materialize the result in memory (DuckDB
//!    into a temp table, so Python object conversion is not timed). `OPSBOARD_BENCH_HOSTS` scales the host count.
//!
//! Run: `cargo bench --bench e2e`.

mod common;

use common::{env_usize, keyed_client, protocols};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opsboard::config::ServerConfig;
use opsboard::generate::CpuGenerator;
use opsboard::query::QueryEngine;
use opsboard::server::{ServeOptions, serve};
use opsboard::storage::{OpenMode, Store};

const START: i64 = 1_704_067_200_000_000_000;
const STEP: i64 = 10_000_000_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        write_throughput().await;
        // OPSBOARD_BENCH_QUERY=0 runs the write part only.
        if env_usize("OPSBOARD_BENCH_QUERY", 1) != 0 {
            query_vs_duckdb().await;
        }
    });
}

/// One protocol's write load: bodies made up front, so the clients measure the server.
struct Load {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    bodies: Vec<Vec<u8>>,
    /// What the bodies carry in all, in `unit`s.
    units: usize,
    unit: &'static str,
}

async fn write_throughput() {
    let rows = env_usize("OPSBOARD_BENCH_WRITE_ROWS", 1_000_000);
    let mut generator = CpuGenerator::new(400, 5);
    let ndjson: Vec<Vec<u8>> = (0..rows / 5_000)
        .map(|b| {
            let times: Vec<i64> = (0..12)
                .map(|i| START + (b as i64 * 12 + i) * STEP)
                .collect();
            let mut out = vec![];
            // 12 steps × 400 hosts = 4,800 rows per body, the closest whole-step size to 5,000.
            generator.ndjson(&times[..], &mut out);
            out
        })
        .collect();
    let sent_rows = ndjson.len() * 4_800;
    let parsed: Vec<Vec<protocols::Row>> = ndjson.iter().map(|b| protocols::rows(b)).collect();
    let fields = parsed
        .first()
        .and_then(|b| b.first())
        .map_or(0, |r| r.fields.len());
    let loads = [
        Load {
            name: "ndjson",
            path: "/api/v1/tenants/bench/write/cpu?precision=ns",
            content_type: "application/x-ndjson",
            bodies: ndjson.clone(),
            units: sent_rows,
            unit: "rows",
        },
        Load {
            name: "line_protocol",
            path: "/api/v1/tenants/bench/write_lp",
            content_type: "text/plain",
            bodies: parsed
                .iter()
                .map(|r| protocols::line_protocol(r).into_bytes())
                .collect(),
            units: sent_rows,
            unit: "rows",
        },
        Load {
            name: "remote_write",
            path: "/api/v1/tenants/bench/prom/write",
            content_type: "application/x-protobuf",
            bodies: parsed
                .iter()
                .flat_map(|r| protocols::remote_write(r))
                .collect(),
            units: sent_rows * fields,
            unit: "samples",
        },
        Load {
            name: "otlp_metrics",
            path: "/api/v1/tenants/bench/otlp/v1/metrics",
            content_type: "application/x-protobuf",
            bodies: parsed.iter().map(|r| protocols::otlp(r)).collect(),
            units: sent_rows * fields,
            unit: "points",
        },
    ];
    drop(parsed);
    // OPSBOARD_BENCH_PROTOCOLS=line_protocol,otlp_metrics runs those loads only.
    let only = std::env::var("OPSBOARD_BENCH_PROTOCOLS").unwrap_or_default();
    for load in loads {
        if only.is_empty() || only.split(',').any(|p| p == load.name) {
            write_load(load).await;
        }
    }
}

/// A fresh server taking `load` from 2 concurrent clients; prints the rate.
async fn write_load(load: Load) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("tenants/bench")).expect("tenant");
    let mut config = ServerConfig {
        data_dir: dir.path().join("data"),
        tenants_dir: dir.path().join("tenants"),
        ..Default::default()
    };
    config.storage.flush_max_rows = 10_000_000;
    // The bench measures the server, not the per-key brake.
    config.auth.api_rate_per_second = 1e9;
    config.auth.api_burst = u32::MAX;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}{}",
        listener.local_addr().expect("addr"),
        load.path
    );
    let client = keyed_client(&config).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        config,
        listener,
        ServeOptions {
            flush_on_shutdown: false,
            ..Default::default()
        },
        async {
            let _ = stopped.await;
        },
    ));
    let bodies = Arc::new(load.bodies);
    let t = Instant::now();
    let mut tasks = vec![];
    // Prometheus runs up to 200 remote-write shards; OPSBOARD_BENCH_CLIENTS=8 shows more of them.
    let clients = env_usize("OPSBOARD_BENCH_CLIENTS", 2);
    for c in 0..clients {
        let (client, url, bodies) = (client.clone(), url.clone(), bodies.clone());
        let content_type = load.content_type;
        tasks.push(tokio::spawn(async move {
            for body in bodies.iter().skip(c).step_by(clients) {
                let resp = client
                    .post(&url)
                    .header("content-type", content_type)
                    .body(body.clone())
                    .send()
                    .await
                    .expect("write");
                assert!(
                    resp.status().is_success(),
                    "{}",
                    resp.text().await.unwrap_or_default()
                );
            }
        }));
    }
    for task in tasks {
        task.await.expect("client");
    }
    let elapsed = t.elapsed();
    let per_body = load.units / bodies.len().max(1);
    println!(
        "http_write {}: {} {} in {:.2}s = {:.0} {}/s ({clients} clients, {} bodies of ~{per_body}, fsync per group commit)",
        load.name,
        load.units,
        load.unit,
        elapsed.as_secs_f64(),
        load.units as f64 / elapsed.as_secs_f64(),
        load.unit,
        bodies.len(),
    );
    let _ = stop.send(());
    server.await.expect("server").expect("serve");
}

async fn query_vs_duckdb() {
    let hosts = env_usize("OPSBOARD_BENCH_HOSTS", 400);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("tenants/bench")).expect("tenant");
    let storage = opsboard::config::StorageConfig {
        flush_max_rows: usize::MAX,
        flush_max_bytes: usize::MAX,
        ..Default::default()
    };
    let store = Store::open(
        storage,
        &dir.path().join("data"),
        &dir.path().join("tenants"),
        OpenMode::ReadWrite,
    )
    .await
    .expect("store");
    let tenant = store.tenant("bench").await.expect("tenant");
    let mut generator = CpuGenerator::new(hosts, 7);
    let steps = 3 * 8_640;
    let mut rows = 0;
    let mut persist_time = Duration::ZERO;
    for day in 0..3 {
        for chunk in (0..8_640i64).collect::<Vec<_>>().chunks(250) {
            let times: Vec<i64> = chunk
                .iter()
                .map(|i| START + (day * 8_640 + i) * STEP)
                .collect();
            let batch = generator.batch(&times);
            rows += batch.num_rows();
            tenant.write("cpu", batch).await.expect("write");
        }
        let t = Instant::now();
        tenant.persist_all().await.expect("persist");
        persist_time += t.elapsed();
    }
    println!(
        "persist: {rows} rows to Parquet in {:.2}s = {:.0} rows/s ({steps} steps × {hosts} hosts)",
        persist_time.as_secs_f64(),
        rows as f64 / persist_time.as_secs_f64()
    );
    let engine = QueryEngine::new(Default::default());
    let sql = "SELECT hostname, date_bin(INTERVAL '10 minutes', time) AS bucket, avg(usage_user) AS avg_user \
               FROM cpu WHERE time >= '2024-01-02T00:00:00Z' AND time < '2024-01-03T00:00:00Z' \
               GROUP BY hostname, bucket";
    let mut result_rows = 0;
    engine.collect(&tenant, sql).await.expect("warm-up");
    let runs = 5;
    let t = Instant::now();
    for _ in 0..runs {
        result_rows = engine
            .collect(&tenant, sql)
            .await
            .expect("query")
            .iter()
            .map(|b| b.num_rows())
            .sum();
    }
    let ours = t.elapsed().as_secs_f64() / runs as f64;
    println!(
        "rollup_query: opsboard {:.3}s per run ({result_rows} result rows, warm, mean of {runs})",
        ours
    );

    let glob = dir.path().join("data/objects/bench/cpu/*/*.parquet");
    let script = format!(
        "import duckdb, time\ncon = duckdb.connect()\nq = \"\"\"SELECT hostname, time_bucket(INTERVAL '10 minutes', time::TIMESTAMP_NS::TIMESTAMP) AS bucket, avg(usage_user) FROM read_parquet('{}') WHERE time >= '2024-01-02 00:00:00+00' AND time < '2024-01-03 00:00:00+00' GROUP BY ALL\"\"\"\nm = 'CREATE OR REPLACE TEMP TABLE r AS ' + q\ncon.execute(m)\nt = time.perf_counter()\nfor _ in range({runs}): con.execute(m)\nelapsed = (time.perf_counter() - t) / {runs}\nprint(elapsed, con.execute('SELECT count(*) FROM r').fetchone()[0])\n",
        glob.display()
    );
    match std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let mut parts = text.split_whitespace();
            let duck: f64 = parts
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            let duck_rows = parts.next().unwrap_or("?");
            println!(
                "rollup_query: duckdb {duck:.3}s per run ({duck_rows} result rows); opsboard/duckdb = {:.2}x",
                ours / duck
            );
        }
        Ok(out) => println!(
            "rollup_query: duckdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => println!("rollup_query: duckdb not run ({e}); `pip install duckdb`"),
    }
}
