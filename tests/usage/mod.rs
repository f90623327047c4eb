//! Usage metering and quotas over HTTP: counters on /metrics (checked by `promtool` when it is
//! installed), the `opsboard_usage` rows recorded each interval, rows/day and queries/minute
//! quotas answered 429 with `Retry-After` and nothing stored, the day's rows remembered across
//! a restart, and the 80 % warning delivered once through the tenant's alert routes.

use std::path::Path;
use std::time::Duration;

use super::common::alerting::webhook;
use super::common::{TestDirs, TestServer, copy_dir};
use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/acme");

fn tenants(dirs: &TestDirs, hook: &str) {
    for (tenant, quotas) in [
        ("acme", "quotas:\n  rows_per_day: 10\n"),
        ("other", "quotas:\n  queries_per_minute: 3\n"),
    ] {
        let dir = dirs.tenants().join(tenant);
        copy_dir(Path::new(FIXTURE), &dir);
        let yaml = std::fs::read_to_string(dir.join("tenant.yaml")).unwrap();
        std::fs::write(dir.join("tenant.yaml"), format!("{yaml}{quotas}")).unwrap();
        std::fs::create_dir_all(dir.join("alerts")).unwrap();
        let routes = format!(
            "channels:\n  - {{name: hook, type: webhook, url: \"{hook}\"}}\n\
             routes:\n  - {{channels: [hook], match: {{alertname: QuotaWarning}}}}\n"
        );
        std::fs::write(dir.join("alerts/routes.yaml"), routes).unwrap();
    }
}

async fn start(dirs: &TestDirs) -> TestServer {
    let mut config = dirs.config();
    config.metering.interval = "1s".parse().unwrap();
    config.alerts.allowed_targets = vec!["127.0.0.1".parse().unwrap()];
    TestServer::start(config).await
}

async fn metrics(server: &TestServer) -> String {
    let resp = server
        .client
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// The value of the sample named exactly `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn lp(server: &TestServer, tenant: &str, body: &str) -> reqwest::Response {
    server
        .client
        .post(format!("{}/api/v2/write?bucket={tenant}", server.url))
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

fn ndjson(rows: usize, from: usize) -> String {
    (from..from + rows)
        .map(|i| {
            format!(
                "{{\"time\": {}, \"host\": \"h{i}\", \"cpu\": {i}}}\n",
                1_700_000_000_000u64 + i as u64
            )
        })
        .collect()
}

/// Polls `sql` on `tenant` until `done` says yes (≤ 15 s).
async fn eventually(
    server: &TestServer,
    tenant: &str,
    sql: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut last = vec![];
    for _ in 0..150 {
        let (status, body) = server.query(tenant, sql).await;
        if status == 200 {
            last = body.as_array().cloned().unwrap_or_default();
            if done(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{sql} never answered as expected; last {last:?}");
}

#[tokio::test]
async fn usage_is_metered_recorded_and_held_to_quotas() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("opsboard=info")
        .try_init();
    let hook = webhook(0).await;
    let dirs = TestDirs::new(&[]);
    tenants(&dirs, &hook.url);
    let server = start(&dirs).await;

    // 6 rows through two protocols, 2 tables of line protocol in one request.
    let body = ndjson(4, 0);
    let (status, _) = server
        .write("acme", "metrics", "application/x-ndjson", body.clone())
        .await;
    assert_eq!(status, 200);
    let lines = "cpu,host=a usage=1 1700000000000000000\nmem,host=a used=2 1700000000000000000\n";
    assert_eq!(lp(&server, "acme", lines).await.status(), 204);

    // 6 + 5 > 10: refused whole, with the way out; nothing of it is stored.
    let resp = server
        .client
        .post(format!("{}/api/v1/tenants/acme/write/metrics", server.url))
        .header("content-type", "application/x-ndjson")
        .body(ndjson(5, 100))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    let error = resp.text().await.unwrap();
    assert!(
        error.contains("6 of its 10 rows today (quotas.rows_per_day)"),
        "{error}"
    );
    assert_eq!(server.count("acme", "metrics").await, 4);
    // Exactly up to the limit is taken; one more row is not, through any protocol.
    let (status, _) = server
        .write("acme", "metrics", "application/x-ndjson", ndjson(4, 200))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        lp(&server, "acme", "cpu,host=b usage=1 1700000000000000001\n")
            .await
            .status(),
        429
    );
    assert_eq!(server.count("acme", "metrics").await, 8);

    // Queries per minute (per node) on `other`: at most 3 admitted before the first 429.
    let mut admitted = 0;
    let mut refused = None;
    for _ in 0..8 {
        let (status, body) = server.query_raw("other", "SELECT 1 AS one", "json").await;
        match status {
            200 => admitted += 1,
            429 => {
                refused = Some(String::from_utf8(body).unwrap());
                break;
            }
            other => panic!("{other}"),
        }
    }
    let refused = refused.expect("the query quota never refused");
    assert!(
        admitted <= 3,
        "{admitted} admitted before the first refusal"
    );
    assert!(refused.contains("quotas.queries_per_minute"), "{refused}");

    // The counters, per tenant, table and protocol.
    let text = metrics(&server).await;
    let rows = |table: &str, protocol: &str| {
        sample(
            &text,
            &format!(
                "opsboard_ingested_rows_total{{tenant=\"acme\",table=\"{table}\",protocol=\"{protocol}\"}}"
            ),
        )
    };
    assert_eq!(rows("metrics", "ndjson"), Some(8.0), "{text}");
    assert_eq!(rows("cpu", "line_protocol"), Some(1.0));
    assert_eq!(rows("mem", "line_protocol"), Some(1.0));
    let bytes = |table: &str, protocol: &str| {
        sample(&text, &format!("opsboard_ingested_bytes_total{{tenant=\"acme\",table=\"{table}\",protocol=\"{protocol}\"}}")).unwrap()
    };
    assert_eq!(
        bytes("metrics", "ndjson") as usize,
        body.len() + ndjson(4, 200).len()
    );
    assert_eq!(
        (bytes("cpu", "line_protocol") + bytes("mem", "line_protocol")) as usize,
        lines.len()
    );
    assert_eq!(
        sample(
            &text,
            "opsboard_quota_refusals_total{tenant=\"acme\",quota=\"rows_per_day\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "opsboard_quota_refusals_total{tenant=\"other\",quota=\"queries_per_minute\"}"
        ),
        Some(1.0)
    );
    assert!(sample(&text, "opsboard_queries_total{tenant=\"acme\"}").unwrap() >= 2.0);
    assert!(sample(&text, "opsboard_api_requests_total{tenant=\"acme\"}").unwrap() >= 6.0);
    promtool_accepts(&text);

    // Recorded into the tenant's own table within a couple of intervals, by protocol.
    let sql = "SELECT protocol, sum(value) AS n FROM opsboard_usage WHERE metric = 'ingested_rows' GROUP BY protocol ORDER BY protocol";
    let recorded = eventually(&server, "acme", sql, |rows| {
        rows.iter()
            .map(|r| r["n"].as_f64().unwrap_or(0.0))
            .sum::<f64>()
            >= 10.0
    })
    .await;
    assert_eq!(recorded[0]["protocol"], "line_protocol");
    assert_eq!(recorded[0]["n"], 2.0);
    assert_eq!(recorded[1]["n"], 8.0);
    // A tenant cannot write the usage table itself.
    let (status, _) = server
        .write(
            "acme",
            "opsboard_usage",
            "application/x-ndjson",
            ndjson(1, 0),
        )
        .await;
    assert_eq!(status, 403);

    // 10 of 10 rows: one QuotaWarning through the tenant's routes, not one per pass.
    for _ in 0..100 {
        if !hook.bodies.lock().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let warnings: Vec<String> = hook.bodies.lock().iter().map(|b| b.to_string()).collect();
    let rows_warnings = warnings
        .iter()
        .filter(|w| w.contains("rows_per_day"))
        .count();
    let summary = server.get("/api/v1/tenants/acme/alerts").await;
    assert_eq!(rows_warnings, 1, "{warnings:?} {summary:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("100 % of quotas.rows_per_day used (10 of 10)")),
        "{warnings:?}"
    );

    // After a restart the day's rows are read back before the first write is taken.
    server.stop().await;
    let server = start(&dirs).await;
    let (status, body) = server
        .write("acme", "metrics", "application/x-ndjson", ndjson(1, 300))
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(server.count("acme", "metrics").await, 8);
    server.stop().await;
}

/// `promtool check metrics` (Debian's prometheus package) on the exposition, when installed;
/// required when OPSBOARD_CLIENTS=required (CI).
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var("OPSBOARD_CLIENTS").as_deref() != Ok("required"),
                "promtool is required: {e}"
            );
            eprintln!("skipping promtool check: {e}");
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool check metrics: {said}");
}
