//! Panel engine figures, printed as plain lines (a bench binary: each step runs a few times).
//!
//! Data: TSBS cpu rows for `OPSBOARD_BENCH_HOSTS` hosts (default 170) every 10 s for 7 days
//! (≈10.3M rows), persisted to Parquet, served by an in-process server on loopback.
//!
//! 1. One `timeseries` panel: avg usage_user per host in 10-minute buckets over the 7 days —
//!    cold (new server, first request), uncached (cache miss, Parquet metadata warm) and cached.
//! 2. A 20-panel dashboard (10 timeseries, one per usage_* field, and 10 KPIs with deltas),
//!    all panels requested concurrently as a browser would: cold, uncached and cached; and the
//!    same dashboard as a server-rendered page (`/t/bench`, charts drawn to SVG): cold and warm.
//! 3. A `health_status` panel (each host's newest row, a week back) on a live range, from the
//!    newest-row cache and, for comparison, from a scan (a `query:` twin): first request after a
//!    start (which loads the cache from the files) and uncached after.
//! 4. 50 viewers of that dashboard on a live range, reloading every 2 s while its panels
//!    refresh every 5 s: each panel request's latency percentiles.
//! 5. Export of every raw row of one field (10.3M rows) through the panel export route as CSV
//!    and Parquet, from the release `opsboard` binary on the same data: time, bytes and the
//!    server process's peak RSS (VmHWM, which includes its start-up).
//!
//! The table declares per-minute and hourly rollups per host (`OPSBOARD_BENCH_ROLLUPS=0`: none),
//! rolled up before the server starts, as a server that ran a while has them;
//! `OPSBOARD_BENCH_ALIGN_SECS=3600` puts the ranges on whole hours (no partial buckets);
//! `OPSBOARD_BENCH_SHARED_WAIT_MS=0` runs each panel's aggregate alone (no shared scans).
//!
//! Run: `cargo bench --bench panels`.

mod common;

use common::{env_usize, keyed_client};
use std::path::Path;
use std::time::{Duration, Instant};

use opsboard::config::ServerConfig;
use opsboard::generate::FIELDS;
use opsboard::server::{ServeOptions, serve};

const STEP: i64 = 10_000_000_000;
const DAYS: i64 = 7;

fn write_config(tenant: &Path) {
    std::fs::create_dir_all(tenant.join("dashboards")).expect("dirs");
    std::fs::create_dir_all(tenant.join("panels")).expect("dirs");
    // `OPSBOARD_BENCH_ROLLUPS=0`: raw rows only, to compare.
    let rollups = if env_usize("OPSBOARD_BENCH_ROLLUPS", 1) == 1 {
        let fields: Vec<String> = FIELDS.iter().map(|f| format!("{f}: float")).collect();
        format!(
            "    fields: {{{}}}\n    rollups:\n      - {{intervals: [1m, 1h], group_by: [hostname]}}\n      - {{intervals: [1m, 1h]}}\n",
            fields.join(", ")
        )
    } else {
        String::new()
    };
    std::fs::write(
        tenant.join("tenant.yaml"),
        format!(
            "tables:\n  cpu:\n    tags: [{}]\n{rollups}",
            opsboard::generate::TAGS.join(", ")
        ),
    )
    .expect("tenant.yaml");
    let ten_minutes = "  aggregation:\n    rules:\n      - {bucket: 10m}\n";
    std::fs::write(
        tenant.join("panels/per_host.yaml"),
        format!("panel:\n  type: timeseries\n  title: usage_user per host\n  data_source:\n    table: cpu\n    columns: {{value: usage_user, series_label: hostname}}\n{ten_minutes}"),
    )
    .expect("panel");
    // The newest region of each host, a week back: the health panel's shape (its own
    // columns answer from the newest rows; the twin filtering on a field keeps to the scan).
    let health = "panel:\n  type: health_status\n  title: hosts\n  data_source:\n    table: cpu\n    columns: {service_name: hostname, status_value: region}\n";
    std::fs::write(tenant.join("panels/health.yaml"), health).expect("panel");
    let scan = health.replace(
        "    columns:",
        "    query: \"usage_user >= 0\"\n    columns:",
    );
    std::fs::write(tenant.join("panels/health_scan.yaml"), scan).expect("panel");
    let mut entries = String::new();
    for field in FIELDS {
        std::fs::write(
            tenant.join(format!("panels/ts_{field}.yaml")),
            format!("panel:\n  type: timeseries\n  title: {field}\n  refresh_interval: 5s\n  data_source:\n    table: cpu\n    columns: {{value: {field}}}\n{ten_minutes}"),
        )
        .expect("panel");
        std::fs::write(
            tenant.join(format!("panels/kpi_{field}.yaml")),
            format!("panel:\n  type: kpi\n  title: {field}\n  refresh_interval: 5s\n  data_source:\n    table: cpu\n    columns: {{value: {field}}}\n  aggregation: {{function: avg}}\n  display:\n    show_delta: true\n"),
        )
        .expect("panel");
        entries.push_str(&format!("    - id: ts_{field}\n    - id: kpi_{field}\n"));
    }
    std::fs::write(
        tenant.join("dashboards/default.yaml"),
        format!("dashboard:\n  name: Bench\n  panels:\n{entries}"),
    )
    .expect("dashboard");
}

async fn fill(config: &ServerConfig, hosts: usize, start: i64) -> usize {
    common::fill_tsbs(config, "bench", hosts, start, DAYS * 8640, STEP).await
}

struct Server {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

async fn start_server(config: &ServerConfig) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let config = config.clone();
    let handle = tokio::spawn(async move {
        serve(config, listener, ServeOptions::default(), async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
    });
    Server { url, stop, handle }
}

async fn get(client: &reqwest::Client, url: &str) -> usize {
    let resp = client.get(url).send().await.expect("get");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.bytes().await.expect("body").len()
}

/// Fetches every panel concurrently; returns (wall time, total bytes).
async fn dashboard(
    client: &reqwest::Client,
    base: &str,
    panels: &[String],
    range: &str,
) -> (Duration, usize) {
    let started = Instant::now();
    let fetches = panels.iter().map(|p| {
        let url = format!("{base}/api/v1/tenants/bench/panels/{p}/data?{range}");
        let client = client.clone();
        async move { get(&client, &url).await }
    });
    let bytes: usize = futures::future::join_all(fetches).await.into_iter().sum();
    (started.elapsed(), bytes)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let hosts = env_usize("OPSBOARD_BENCH_HOSTS", 170);
        let dir = tempfile::tempdir().expect("tempdir");
        write_config(&dir.path().join("tenants/bench"));
        let mut config = ServerConfig {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().join("data"),
            tenants_dir: dir.path().join("tenants"),
            panels_dir: dir.path().join("panels"),
            ..Default::default()
        };
        config.storage.flush_max_rows = 20_000_000;
        // The bench measures the server, not the per-key brake.
        config.auth.api_rate_per_second = 1e9;
        config.auth.api_burst = u32::MAX;
        config.storage.flush_max_bytes = 8 << 30;
        // `OPSBOARD_BENCH_SHARED_WAIT_MS=0`: every panel its own query, to compare.
        config.panels.shared_scan_wait = opsboard::config::HumanDuration(Duration::from_millis(
            env_usize("OPSBOARD_BENCH_SHARED_WAIT_MS", 3) as u64,
        ));
        // `OPSBOARD_BENCH_ALIGN_SECS=3600`: ranges on whole hours, so rollups need no raw rows
        // for partial buckets at the ends (to tell that cost apart).
        let align = STEP.max(env_usize("OPSBOARD_BENCH_ALIGN_SECS", 0) as i64 * 1_000_000_000);
        let end = (chrono::Utc::now().timestamp_nanos_opt().expect("now") / align) * align;
        let start = end - DAYS * 86_400_000_000_000;
        let t = Instant::now();
        let rows = fill(&config, hosts, start).await;
        println!(
            "data: {rows} rows ({hosts} hosts × 7 d × 10 s) written and persisted in {:.1} s",
            t.elapsed().as_secs_f64()
        );

        let client = keyed_client(&config).await;
        let range = |shift_ms: i64| {
            let fmt = |ns: i64| {
                chrono::DateTime::from_timestamp_nanos(ns + shift_ms * 1_000_000)
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            };
            format!("from={}&to={}", fmt(start), fmt(end))
        };

        let server = start_server(&config).await;
        let url = |shift| {
            format!(
                "{}/api/v1/tenants/bench/panels/per_host/data?{}",
                server.url,
                range(shift)
            )
        };
        let t = Instant::now();
        let bytes = get(&client, &url(0)).await;
        let cold = t.elapsed().as_secs_f64() * 1e3;
        let body: serde_json::Value = client.get(url(0)).send().await.expect("get").json().await.expect("json");
        let series = body["series"].as_array().map_or(0, Vec::len);
        let points: usize = body["series"]
            .as_array()
            .map_or(0, |s| s.iter().map(|s| s["points"].as_array().map_or(0, Vec::len)).sum());
        println!(
            "timeseries 7 d, bucket {}, {series} series, {points} points: cold {cold:.0} ms ({bytes} bytes of JSON)",
            body["bucket"]
        );
        let mut uncached = vec![];
        for shift in 1..=5 {
            let t = Instant::now();
            get(&client, &url(shift)).await;
            uncached.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let mut cached = vec![];
        for _ in 0..20 {
            let t = Instant::now();
            get(&client, &url(5)).await;
            cached.push(t.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "timeseries uncached: mean {:.0} ms over 5; cached: mean {:.2} ms over 20",
            mean(&uncached),
            mean(&cached)
        );
        let metrics = metrics_text(&client, &server.url).await;
        let reads = metrics
            .lines()
            .find(|l| l.starts_with("opsboard_rollup_reads_total "))
            .unwrap_or("opsboard_rollup_reads_total ?");
        println!("after the timeseries steps: {reads}");
        let _ = server.stop.send(());
        let _ = server.handle.await;

        let server = start_server(&config).await;
        for panel in ["health", "health_scan"] {
            let mut times = vec![];
            for minutes in 1..=6 {
                let url = format!(
                    "{}/api/v1/tenants/bench/panels/{panel}/data?from=now-{minutes}m&to=now",
                    server.url
                );
                let t = Instant::now();
                get(&client, &url).await;
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            println!(
                "{panel} ({hosts} hosts' newest row, a week back, live): first {:.0} ms, then mean {:.1} ms over 5 uncached",
                times[0],
                mean(&times[1..])
            );
        }
        let _ = server.stop.send(());
        let _ = server.handle.await;

        let server = start_server(&config).await;
        let mut panels = Vec::new();
        for field in FIELDS {
            panels.push(format!("ts_{field}"));
            panels.push(format!("kpi_{field}"));
        }
        let (cold, bytes) = dashboard(&client, &server.url, &panels, &range(0)).await;
        println!(
            "20-panel dashboard: cold {:.0} ms ({bytes} bytes)",
            cold.as_secs_f64() * 1e3
        );
        // `OPSBOARD_BENCH_PROFILE_SECS=N`: the uncached dashboard again and again for N seconds
        // (a new range each time), for a profiler attached to this process meanwhile.
        let profile = Duration::from_secs(env_usize("OPSBOARD_BENCH_PROFILE_SECS", 0) as u64);
        if !profile.is_zero() {
            println!("profiling window: {} s from now (pid {})", profile.as_secs(), std::process::id());
            let t = Instant::now();
            let mut shift = 1_000;
            while t.elapsed() < profile {
                dashboard(&client, &server.url, &panels, &range(shift)).await;
                shift += 1;
            }
        }
        // Each panel alone on an unseen range: where the dashboard's time goes.
        let mut alone = vec![];
        for (i, panel) in panels.iter().enumerate() {
            let t = Instant::now();
            get(
                &client,
                &format!("{}/api/v1/tenants/bench/panels/{panel}/data?{}", server.url, range(500 + i as i64)),
            )
            .await;
            alone.push((t.elapsed().as_secs_f64() * 1e3, panel.clone()));
        }
        alone.sort_by(|a, b| b.0.total_cmp(&a.0));
        let total: f64 = alone.iter().map(|a| a.0).sum();
        let slowest: Vec<String> = alone.iter().take(4).map(|(ms, p)| format!("{p} {ms:.0} ms")).collect();
        println!("each panel alone, unseen range: {total:.0} ms in all; slowest {}", slowest.join(", "));
        let mut uncached = vec![];
        for shift in 1..=3 {
            uncached.push(
                dashboard(&client, &server.url, &panels, &range(shift))
                    .await
                    .0
                    .as_secs_f64()
                    * 1e3,
            );
        }
        let mut cached = vec![];
        for _ in 0..10 {
            cached.push(
                dashboard(&client, &server.url, &panels, &range(3))
                    .await
                    .0
                    .as_secs_f64()
                    * 1e3,
            );
        }
        println!(
            "20-panel dashboard uncached: mean {:.0} ms over 3; cached: mean {:.2} ms over 10",
            mean(&uncached),
            mean(&cached)
        );
        let page_url = format!("{}/t/bench?{}", server.url, range(10));
        let t = Instant::now();
        let bytes = get(&client, &page_url).await;
        let page_cold = t.elapsed().as_secs_f64() * 1e3;
        let mut warm = vec![];
        for _ in 0..5 {
            let t = Instant::now();
            get(&client, &page_url).await;
            warm.push(t.elapsed().as_secs_f64() * 1e3);
        }
        println!("20-panel page /t/bench: cold {page_cold:.0} ms ({bytes} bytes of HTML), warm mean {:.0} ms over 5", mean(&warm));
        let _ = server.stop.send(());
        let _ = server.handle.await;

        let server = start_server(&config).await;
        viewers(&client, &server.url, &panels).await;
        let _ = server.stop.send(());
        let _ = server.handle.await;

        // Exports from the real binary, so its peak RSS is the export's alone.
        let (mut child, base) = spawn_binary(&config);
        for format in ["csv", "parquet"] {
            let url = format!(
                "{base}/api/v1/tenants/bench/panels/ts_usage_user/export?format={format}&disable_aggregation=true&{}",
                range(0)
            );
            let t = Instant::now();
            let mut resp = client.get(&url).send().await.expect("export");
            assert!(resp.status().is_success(), "{url}: {}", resp.status());
            let mut bytes = 0usize;
            while let Some(chunk) = resp.chunk().await.expect("chunk") {
                bytes += chunk.len();
            }
            println!(
                "export of {rows} raw rows as {format}: {:.1} s, {:.0} MB; server peak RSS so far {} MB",
                t.elapsed().as_secs_f64(),
                bytes as f64 / 1e6,
                peak_rss_mb(child.id())
            );
        }
        let _ = child.kill();
        let _ = child.wait();
    });
}

/// `OPSBOARD_BENCH_VIEWERS` (50) viewers open the dashboard on a live range (`now-7d` to
/// `now`) on a just-started server, each at a random moment of its first second, and reload
/// it every 2 s for 20 s; the panels refresh every 5 s, so answers expire under them.
/// Prints each panel request's latency percentiles.
async fn viewers(client: &reqwest::Client, base: &str, panels: &[String]) {
    let count = env_usize("OPSBOARD_BENCH_VIEWERS", 50);
    if count == 0 {
        return;
    }
    let started = Instant::now();
    let run_for = Duration::from_secs(20);
    let tasks = (0..count).map(|viewer| {
        let (client, panels) = (client.clone(), panels.to_vec());
        let base = base.to_string();
        tokio::spawn(async move {
            // Spread over the first second, deterministically.
            tokio::time::sleep(Duration::from_millis((viewer as u64 * 7919) % 1000)).await;
            let mut latencies = vec![];
            let mut round = 0;
            while started.elapsed() < run_for {
                let reload = Instant::now();
                let fetches = panels.iter().map(|p| {
                    let url =
                        format!("{base}/api/v1/tenants/bench/panels/{p}/data?from=now-7d&to=now");
                    let client = client.clone();
                    async move {
                        let t = Instant::now();
                        get(&client, &url).await;
                        (round, t.elapsed().as_secs_f64() * 1e3)
                    }
                });
                latencies.extend(futures::future::join_all(fetches).await);
                round += 1;
                tokio::time::sleep(Duration::from_secs(2).saturating_sub(reload.elapsed())).await;
            }
            latencies
        })
    });
    let timed: Vec<(usize, f64)> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flat_map(|t| t.expect("viewer"))
        .collect();
    let sorted = |first_round: usize| {
        let mut v: Vec<f64> = timed
            .iter()
            .filter(|(round, _)| *round >= first_round)
            .map(|(_, ms)| *ms)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let at = |v: &[f64], q: f64| v[((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1))];
    let (all, steady) = (sorted(0), sorted(1));
    let metrics = metrics_text(client, base).await;
    let counter = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or("?")
            .to_string()
    };
    println!(
        "{count} viewers, 20 s, reload every 2 s, panels refreshed every 5 s: {} panel requests, p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.0} ms; after each viewer's first load (cold server): p95 {:.1} ms, p99 {:.1} ms, max {:.0} ms; {} misses, {} of them shared a computation",
        all.len(),
        at(&all, 0.5),
        at(&all, 0.95),
        at(&all, 0.99),
        all.last().copied().unwrap_or(0.0),
        at(&steady, 0.95),
        at(&steady, 0.99),
        steady.last().copied().unwrap_or(0.0),
        counter("opsboard_panel_cache_misses_total"),
        counter("opsboard_panel_answers_shared_total"),
    );
}

/// The server's `/metrics` page.
async fn metrics_text(client: &reqwest::Client, base: &str) -> String {
    let resp = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics");
    resp.text().await.unwrap_or_default()
}

/// `opsboard serve` (release) on the bench's data; returns it and its base URL.
fn spawn_binary(config: &ServerConfig) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_opsboard"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&config.data_dir)
        .arg("--tenants-dir")
        .arg(&config.tenants_dir)
        .env("OPSBOARD_LOG", "opsboard=warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn opsboard");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let url = line.trim().rsplit(' ').next().expect("url").to_string();
    (child, url)
}

/// A process's peak resident memory (VmHWM), MB.
fn peak_rss_mb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb / 1024)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}
