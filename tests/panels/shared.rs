//! Shared scans: uncached aggregates of several panels over the same rows (same table, filter,
//! range and buckets) asked for at once run as one query — and each panel's answer is exactly
//! the one it gets alone.

use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;

use super::common::TestServer;
use super::common::fixture::start;
use super::{data, metric, wait_for};

/// The second day, so the KPIs' previous period (the first) has rows too.
const RANGE: &str = "from=2024-01-02T00:00:00Z&to=2024-01-03T00:00:00Z";

fn kpi(field: &str, function: &str, filter: &str, delta: bool) -> String {
    format!(
        "panel:\n  type: kpi\n  title: {function} {field}\n  data_source:\n    table: metrics\n    columns: {{value: {field}}}\n{filter}  aggregation: {{function: {function}}}\n  display: {{show_delta: {delta}}}\n"
    )
}

fn chart(field: &str, function: &str, per_host: bool) -> String {
    let series = if per_host { ", series_label: host" } else { "" };
    format!(
        "panel:\n  type: timeseries\n  title: {field}\n  data_source:\n    table: metrics\n    columns: {{value: {field}{series}}}\n  aggregation:\n    function: {function}\n    rules:\n      - {{bucket: 1h}}\n"
    )
}

const PANELS: [&str; 9] = [
    "k_avg_cpu",
    "k_max_cpu",
    "k_count_mem",
    "k_sum_mem",
    "k_avg_cpu_again",
    "k_avg_cpu_host_a",
    "t_cpu",
    "t_mem",
    "t_mem_all",
];

async fn write_panels(server: &TestServer, dir: &std::path::Path) {
    let host_a = "    query: \"host = 'a'\"\n";
    let files = [
        ("k_avg_cpu", kpi("cpu", "avg", "", true)),
        ("k_max_cpu", kpi("cpu", "max", "", true)),
        ("k_count_mem", kpi("mem", "count", "", false)),
        ("k_sum_mem", kpi("mem", "sum", "", false)),
        // The same aggregate as another panel: one column for both.
        ("k_avg_cpu_again", kpi("cpu", "avg", "", false)),
        // Other rows: a query of its own.
        ("k_avg_cpu_host_a", kpi("cpu", "avg", host_a, false)),
        ("t_cpu", chart("cpu", "avg", true)),
        ("t_mem", chart("mem", "max", true)),
        ("t_mem_all", chart("mem", "avg", false)),
    ];
    for (id, yaml) in files {
        std::fs::write(dir.join(format!("{id}.yaml")), yaml).unwrap();
    }
    for id in PANELS {
        wait_for(server, id).await;
    }
}

/// Nine panels, requested one after another (each alone) and then all at once after a reload
/// (uncached again): the same answers, and the second time the aggregates over the same rows
/// shared their queries — 4 KPIs joined the first's current period, 1 the previous period,
/// 1 chart per host the other; the filtered KPI and the ungrouped chart ran alone.
#[tokio::test]
async fn panels_over_the_same_rows_share_one_scan_and_answer_as_alone() {
    let (dirs, server) = start(|c| {
        // Long enough that concurrent requests on a busy test machine all join.
        c.panels.shared_scan_wait = opsboard::config::HumanDuration(Duration::from_millis(250));
        c.panels.reload_interval = opsboard::config::HumanDuration(Duration::from_millis(100));
    })
    .await;
    let panels = dirs.tenants().join("acme/panels");
    write_panels(&server, &panels).await;
    let mut alone = vec![];
    for id in PANELS {
        let (status, answer) = data(&server, id, RANGE).await;
        assert_eq!(status, 200, "{id}: {answer}");
        alone.push(answer);
    }
    assert_eq!(
        metric(&server, "opsboard_panel_scans_shared_total").await,
        0
    );
    // A new panel: a new configuration generation, nothing cached.
    std::fs::write(panels.join("z_reload.yaml"), kpi("cpu", "min", "", false)).unwrap();
    wait_for(&server, "z_reload").await;
    let together: Vec<(u16, Value)> =
        join_all(PANELS.iter().map(|id| data(&server, id, RANGE))).await;
    for ((id, (status, answer)), alone) in PANELS.iter().zip(&together).zip(&alone) {
        assert_eq!(*status, 200, "{id}: {answer}");
        assert_eq!(answer, alone, "{id}");
    }
    assert_eq!(
        metric(&server, "opsboard_panel_scans_shared_total").await,
        6
    );
    // The answers are real: the fixture's cpu of day 2 (rows 48..96 of both hosts).
    let cpu: Vec<f64> = (48..96i64)
        .flat_map(|i| [0, 1].map(|h| ((i * 7 + h * 13) % 100) as f64 + 0.5))
        .collect();
    let avg = cpu.iter().sum::<f64>() / cpu.len() as f64;
    let value = together[0].1["value"].as_f64().unwrap();
    assert!((value - avg).abs() < 1e-9, "{value} vs {avg}");
    assert_eq!(together[1].1["value"], 99.5);
    assert_eq!(together[2].1["value"], 96.0);
    assert!(together[0].1["previous"].is_number());
    assert_eq!(together[6].1["series"].as_array().unwrap().len(), 2);
    assert_eq!(together[8].1["series"].as_array().unwrap().len(), 1);
}

/// A request that gives up while its panel's shared query is being gathered leaves no one
/// waiting on it: the panel that joined it still gets its answer.
#[tokio::test]
async fn an_abandoned_shared_query_strands_no_one() {
    let (dirs, server) = start(|c| {
        c.panels.shared_scan_wait = opsboard::config::HumanDuration(Duration::from_millis(300));
        c.panels.reload_interval = opsboard::config::HumanDuration(Duration::from_millis(100));
    })
    .await;
    write_panels(&server, &dirs.tenants().join("acme/panels")).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let url = format!(
        "{}/api/v1/tenants/acme/panels/k_count_mem/data?{RANGE}",
        server.url
    );
    let leader = async {
        let sent = impatient
            .get(url)
            .bearer_auth(&server.admin_key)
            .send()
            .await;
        assert!(sent.is_err(), "the impatient request gave up");
    };
    let joiner = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let answer = data(&server, "k_sum_mem", RANGE);
        tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("the joined panel is answered, not left waiting")
    };
    let ((), (status, answer)) = tokio::join!(leader, joiner);
    assert_eq!(status, 200, "{answer}");
    let expected: f64 = (48..96i64).map(|i| 2.0 * (40.0 + (i % 60) as f64)).sum();
    assert_eq!(answer["value"], expected);
}
