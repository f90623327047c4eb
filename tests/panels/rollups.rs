//! Panels read declared rollups: with the files rolled up by the server's own maintenance, the
//! golden answers stay the same and the rollup is what was read.

use std::path::Path;
use std::time::Duration;

use super::common::fixture::{DAY, FIXTURE, write_fixture};
use super::common::{TestDirs, TestServer, copy_dir};
use super::{assert_golden, data, metric};

/// With rollups declared and the files rolled up by the server's own maintenance, panels give
/// the same golden answers — now read from the rollup.
#[tokio::test]
async fn panels_answer_the_same_from_rollups() {
    let dirs = TestDirs::new(&[]);
    copy_dir(Path::new(FIXTURE), &dirs.tenants().join("acme"));
    let tenant_yaml = dirs.tenants().join("acme/tenant.yaml");
    let text = std::fs::read_to_string(&tenant_yaml).unwrap().replace(
        "      mem: float\n",
        "      mem: float\n    rollups: [{intervals: [1m, 1h], group_by: [host]}]\n",
    );
    std::fs::write(&tenant_yaml, text).unwrap();
    // A KPI of an aggregate (not the newest value): answered from the rollup.
    std::fs::write(
        dirs.tenants().join("acme/panels/avg_cpu.yaml"),
        "panel:\n  type: kpi\n  title: CPU of host a\n  data_source:\n    table: metrics\n    columns: {value: cpu}\n    query: \"host = 'a'\"\n  aggregation: {function: avg}\n  display: {show_delta: true}\n",
    )
    .unwrap();
    let mut config = dirs.config();
    let fast = opsboard::config::HumanDuration(Duration::from_millis(100));
    config.storage.flush_max_age = fast;
    config.storage.flush_check_interval = fast;
    config.storage.maintenance_interval = fast;
    let server = TestServer::start(config).await;
    write_fixture(&server, "acme").await;
    let rollups = dirs.data().join("objects/acme/metrics/_rollups");
    let mut held = 0;
    for _ in 0..100 {
        held = walk_parquet(&rollups);
        if held >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(held >= 4, "{held} rollup files");
    for (golden, panel, query) in [
        ("timeseries_1m", "cpu", DAY),
        (
            "kpi",
            "mem_kpi",
            "from=2024-01-01T06:00:00Z&to=2024-01-01T12:00:00Z",
        ),
    ] {
        let before = metric(&server, "opsboard_rollup_reads_total").await;
        let (status, body) = data(&server, panel, query).await;
        assert_eq!(status, 200, "{body}");
        assert_golden(golden, &body);
        // The KPI shows its newest value (not a rollup aggregate): still raw rows.
        let reads = metric(&server, "opsboard_rollup_reads_total").await - before;
        assert_eq!(reads >= 1, panel == "cpu", "{panel}: {reads} rollup reads");
    }
    // The average from the rollup equals the raw rows' (as plain SQL reads them), and the
    // KPI's time is still its newest value's.
    let range = "from=2024-01-01T06:00:00Z&to=2024-01-01T12:00:00Z";
    let before = metric(&server, "opsboard_rollup_reads_total").await;
    let (status, kpi) = data(&server, "avg_cpu", range).await;
    assert_eq!(status, 200, "{kpi}");
    assert!(
        metric(&server, "opsboard_rollup_reads_total").await > before,
        "read from the rollup"
    );
    let raw = server
        .rows(
            "acme",
            "SELECT avg(cpu) AS v, max(time) AS t FROM metrics WHERE host = 'a' AND cpu IS NOT NULL \
             AND time >= '2024-01-01T06:00:00Z' AND time < '2024-01-01T12:00:00Z'",
        )
        .await;
    let (value, expected) = (
        kpi["value"].as_f64().unwrap(),
        raw[0]["v"].as_f64().unwrap(),
    );
    assert!(
        (value - expected).abs() <= 1e-9 * expected.abs().max(1.0),
        "{kpi} vs {raw:?}"
    );
    let newest = chrono::DateTime::parse_from_rfc3339(raw[0]["t"].as_str().unwrap()).unwrap();
    assert_eq!(
        kpi["time"].as_i64(),
        Some(newest.timestamp_millis()),
        "{kpi}"
    );
    server.stop().await;
}

fn walk_parquet(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk_parquet(&p)
            } else {
                usize::from(p.extension().is_some_and(|x| x == "parquet"))
            }
        })
        .sum()
}
