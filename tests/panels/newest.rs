//! Live panels answered from the newest row of each series (`last_rows`) instead of a scan:
//! the same answers as the scan, with late writes and rows dated past the range.

use std::time::Duration;

use serde_json::Value;

use crate::common::TestServer;
use crate::common::fixture::start;
use crate::{data, metric, wait_for};

/// Asks `panel` for `range(1)`, `range(2)`, … (each new, so no answer comes from the panel
/// cache) until an answer is read from the newest rows — after a start the first requests
/// scan while the cache fills in the background; returns that range and answer.
async fn first_read_from_newest_rows(
    server: &TestServer,
    panel: &str,
    range: impl Fn(u32) -> String,
) -> (String, Value) {
    for attempt in 1..60 {
        let range = range(attempt);
        let reads = metric(server, "opsboard_last_rows_reads_total").await;
        let (status, answer) = data(server, panel, &range).await;
        assert_eq!(status, 200, "{answer}");
        if metric(server, "opsboard_last_rows_reads_total").await == reads + 1 {
            return (range, answer);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{panel} never read the newest rows");
}

/// A live health panel answers from the newest row of each series (`last_rows`) instead of
/// scanning the week it looks back: the same services, statuses, errors and times as the scan
/// (a twin panel whose `where:` reads a field, which keeps it on the scan), with a late write,
/// and with a row dated past the range's end (then the scan answers).
#[tokio::test]
async fn live_health_answers_from_the_newest_rows_match_the_scan() {
    let (dirs, server) = start(|_| {}).await;
    let panels = dirs.tenants().join("acme/panels");
    let plain = std::fs::read_to_string(panels.join("health.yaml")).unwrap();
    let scan = plain.replace(
        "  stale_after: 1h\n",
        "  query: \"status >= 0\"\n  stale_after: 1h\n",
    );
    assert_ne!(plain, scan);
    std::fs::write(panels.join("health_scan.yaml"), scan).unwrap();
    wait_for(&server, "health_scan").await;
    let now = chrono::Utc::now().timestamp_millis();
    let rows = |list: &[(&str, i64, i64, &str)]| -> String {
        list.iter()
            .map(|(name, ago_s, status, error)| {
                format!(
                    "{{\"time\":{},\"name\":\"{name}\",\"status\":{status},\"error\":\"{error}\"}}\n",
                    now - ago_s * 1000
                )
            })
            .collect()
    };
    // web: the newer row first, the older one late; db: one row.
    for body in [
        rows(&[("web", 60, 2, "refused"), ("db", 30, 1, "slow")]),
        rows(&[("web", 120, 0, "")]),
    ] {
        let (status, body) = server
            .write("acme", "service_health", "application/x-ndjson", body)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let services = |answer: &Value| answer["services"].clone();
    // The first live request scans and sets the cache filling; later ones read the newest rows
    // (each range new, so no answer comes from the panel cache).
    let (live, newest) = first_read_from_newest_rows(&server, "health", |m| {
        format!("from=now-{}m&to=now", 60 + m)
    })
    .await;
    let after = metric(&server, "opsboard_last_rows_reads_total").await;
    let live = live.as_str();
    let (_, scanned) = data(&server, "health_scan", live).await;
    assert_eq!(
        metric(&server, "opsboard_last_rows_reads_total").await,
        after
    );
    assert_eq!(services(&newest), services(&scanned));
    let web = services(&newest)
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "web")
        .cloned()
        .unwrap();
    assert_eq!(
        (&web["label"], &web["error"]),
        (&"Down".into(), &"refused".into())
    );
    // A row dated an hour ahead: past the live range's end, so the newest rows cannot answer.
    let (status, _) = server
        .write(
            "acme",
            "service_health",
            "application/x-ndjson",
            rows(&[("db", -3600, 0, "")]),
        )
        .await;
    assert_eq!(status, 200);
    let (_, newest) = data(&server, "health", live).await;
    let (_, scanned) = data(&server, "health_scan", live).await;
    assert_eq!(services(&newest), services(&scanned));
    let db = services(&newest)
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "db")
        .cloned()
        .unwrap();
    assert_eq!(
        db["label"], "Degraded",
        "the row inside the range, not the future one"
    );
}

/// A KPI of the newest value on a live range reads the newest rows when its filter reads tags
/// only: the same value and time as its twin whose filter also reads a field (so it scans);
/// when the newest row has no value the scan answers, with the newest value there is.
#[tokio::test]
async fn live_kpi_newest_value_from_the_newest_rows_matches_the_scan() {
    let (dirs, server) = start(|_| {}).await;
    let panels = dirs.tenants().join("acme/panels");
    let kpi = |filter: &str| {
        format!(
            "panel:\n  type: kpi\n  title: mem now\n  data_source:\n    table: metrics\n    columns: {{value: mem}}\n    query: \"{filter}\"\n"
        )
    };
    std::fs::write(panels.join("mem_now.yaml"), kpi("host = 'a'")).unwrap();
    std::fs::write(
        panels.join("mem_now_scan.yaml"),
        kpi("host = 'a' AND mem > -1"),
    )
    .unwrap();
    wait_for(&server, "mem_now").await;
    wait_for(&server, "mem_now_scan").await;
    let now = chrono::Utc::now().timestamp_millis();
    let body = format!(
        "{{\"time\":{},\"host\":\"a\",\"cpu\":1,\"mem\":41}}\n{{\"time\":{},\"host\":\"a\",\"cpu\":1,\"mem\":42}}\n{{\"time\":{},\"host\":\"b\",\"cpu\":1,\"mem\":99}}\n",
        now - 90_000,
        now - 60_000,
        now - 1_000
    );
    let (status, body) = server
        .write("acme", "metrics", "application/x-ndjson", body)
        .await;
    assert_eq!(status, 200, "{body}");
    let pick = |a: &Value| (a["value"].clone(), a["time"].clone());
    let (live, newest) = first_read_from_newest_rows(&server, "mem_now", |m| {
        format!("from=now-{}m&to=now", 10 + m)
    })
    .await;
    let (_, scanned) = data(&server, "mem_now_scan", &live).await;
    assert_eq!(pick(&newest), pick(&scanned));
    assert_eq!(newest["value"], 42.0, "host a's newest, not host b's");
    // A newer row of host a without `mem`: the newest rows cannot say; the scan's 42 stands.
    let body = format!("{{\"time\":{},\"host\":\"a\",\"cpu\":2}}\n", now - 500);
    let (status, _) = server
        .write("acme", "metrics", "application/x-ndjson", body)
        .await;
    assert_eq!(status, 200);
    let (_, answer) = data(&server, "mem_now", "from=now-5m&to=now").await;
    let (_, scanned) = data(&server, "mem_now_scan", "from=now-5m&to=now").await;
    assert_eq!(pick(&answer), pick(&scanned));
    assert_eq!(answer["value"], 42.0);
}

/// An average KPI takes the time of its newest value from the newest rows when the newest of
/// them lies inside its range and has the value — on a past range too — and scans otherwise:
/// the same value and time as its twin whose filter reads a field (so it always scans).
#[tokio::test]
async fn kpi_newest_time_from_the_newest_rows_matches_the_scan_on_any_range() {
    let (dirs, server) = start(|_| {}).await;
    let panels = dirs.tenants().join("acme/panels");
    let kpi = |filter: &str| {
        format!(
            "panel:\n  type: kpi\n  title: mem avg\n  data_source:\n    table: metrics\n    columns: {{value: mem}}\n    query: \"{filter}\"\n  aggregation: {{function: avg}}\n  display: {{show_delta: true}}\n"
        )
    };
    std::fs::write(panels.join("mem_avg.yaml"), kpi("host = 'a'")).unwrap();
    std::fs::write(
        panels.join("mem_avg_scan.yaml"),
        kpi("host = 'a' AND mem > -1"),
    )
    .unwrap();
    wait_for(&server, "mem_avg").await;
    wait_for(&server, "mem_avg_scan").await;
    let pick = |a: &Value| (a["value"].clone(), a["time"].clone(), a["previous"].clone());
    // The fixture's rows span 2024-01-01 and 02; the newest is at 02 23:30.
    let (range, covering) = first_read_from_newest_rows(&server, "mem_avg", |m| {
        format!("from=2024-01-01T00:{m:02}:00Z&to=2024-01-03T00:00:00Z")
    })
    .await;
    let (_, scanned) = data(&server, "mem_avg_scan", &range).await;
    assert_eq!(pick(&covering), pick(&scanned));
    assert_eq!(
        covering["time"], 1_704_238_200_000i64,
        "02 23:30: {covering}"
    );
    // A range ending before the newest rows: they cannot say, the scan does.
    let past = "from=2024-01-01T00:00:00Z&to=2024-01-01T12:00:00Z";
    let (_, answer) = data(&server, "mem_avg", past).await;
    let (_, scanned) = data(&server, "mem_avg_scan", past).await;
    assert_eq!(pick(&answer), pick(&scanned));
    assert_eq!(answer["time"], 1_704_108_600_000i64, "01 11:30: {answer}");
    // A newer row of host a without `mem`: the newest rows cannot say; the scan's time stands.
    let body = "{\"time\":\"2024-01-02T23:50:00Z\",\"host\":\"a\",\"cpu\":2}\n";
    let (status, _) = server
        .write("acme", "metrics", "application/x-ndjson", body)
        .await;
    assert_eq!(status, 200);
    let range = "from=2024-01-01T01:00:00Z&to=2024-01-03T00:00:00Z";
    let (_, answer) = data(&server, "mem_avg", range).await;
    let (_, scanned) = data(&server, "mem_avg_scan", range).await;
    assert_eq!(pick(&answer), pick(&scanned));
    assert_eq!(answer["time"], 1_704_238_200_000i64, "02 23:30: {answer}");
}
