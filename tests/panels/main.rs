//! The panel engine over HTTP: golden answers per panel type from fixed fixture data, the
//! dashboard API, aggregation choices and overrides, timezone alignment, injection attempts,
//! the cache and hot reload.

#[path = "../common/mod.rs"]
mod common;
mod newest;
mod rollups;
mod shared;
mod variables;

use std::path::Path;
use std::time::{Duration, Instant};

use common::fixture::{DAY, FIXTURE, start, write_fixture};
use common::{TestDirs, TestServer, copy_dir};
use serde_json::Value;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/panels");

pub(crate) async fn data(server: &TestServer, panel: &str, query: &str) -> (u16, Value) {
    server
        .get(&format!("/api/v1/tenants/acme/panels/{panel}/data?{query}"))
        .await
}

/// Compares with `tests/golden/panels/<name>.json`; `UPDATE_GOLDEN=1` rewrites it.
pub(crate) fn assert_golden(name: &str, actual: &Value) {
    let path = Path::new(GOLDEN).join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(GOLDEN).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing; run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(text, expected, "golden {name} differs");
}

#[tokio::test]
async fn golden_answers_per_panel_type() {
    let (_dirs, server) = start(|_| {}).await;
    let cases = [
        ("timeseries_1m", "cpu", DAY.to_string()),
        (
            "timeseries_raw",
            "cpu",
            "from=2024-01-01T00:00:00Z&to=2024-01-01T03:00:00Z".to_string(),
        ),
        (
            "kpi",
            "mem_kpi",
            "from=2024-01-01T06:00:00Z&to=2024-01-01T12:00:00Z".to_string(),
        ),
        ("health_status", "health", DAY.to_string()),
        ("table", "errors", DAY.to_string()),
        (
            "table_page2_by_service",
            "errors",
            format!("{DAY}&page=2&sort=service&order=asc"),
        ),
        ("table_filtered", "errors", format!("{DAY}&filter=ERROR")),
        ("custom_template", "summary", DAY.to_string()),
        (
            "custom_image",
            "heatmap",
            "from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z".to_string(),
        ),
    ];
    for (name, panel, query) in cases {
        let (status, body) = data(&server, panel, &query).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_golden(name, &body);
    }
    // The image route serves the same picture as bytes.
    let resp = server
        .client
        .get(format!(
            "{}/api/v1/tenants/acme/panels/heatmap/image?from=2024-01-01T00:00:00Z&to=2024-01-02T00:00:00Z",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
    assert!(resp.text().await.unwrap().starts_with("<svg"));
    server.stop().await;
}

#[tokio::test]
async fn dashboards_resolve_with_default_sizes() {
    let (_dirs, server) = start(|_| {}).await;
    let (status, list) = server.get("/api/v1/tenants/acme/dashboards").await;
    assert_eq!(status, 200);
    assert_eq!(list["dashboards"][0]["name"], "default");
    assert_eq!(list["dashboards"][0]["default"], true);
    let (status, board) = server.get("/api/v1/tenants/acme/dashboards/default").await;
    assert_eq!(status, 200, "{board}");
    let cells: Vec<(String, String, Value)> = board["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().into(),
                p["type"].as_str().unwrap().into(),
                p["position"].clone(),
            )
        })
        .collect();
    let pos = |row, col, width, height| serde_json::json!({"row": row, "col": col, "width": width, "height": height});
    assert_eq!(
        cells,
        vec![
            ("cpu".into(), "timeseries".into(), pos(1, 1, 8, 2)),
            ("mem_kpi".into(), "kpi".into(), pos(1, 9, 4, 1)),
            ("health".into(), "health_status".into(), pos(2, 9, 4, 1)),
            ("errors".into(), "table".into(), pos(3, 1, 12, 3)),
            ("summary".into(), "custom_template".into(), pos(6, 1, 6, 2)),
            ("heatmap".into(), "custom_image".into(), pos(6, 7, 6, 2)),
        ]
    );
    assert_eq!(board["panels"][0]["refresh_interval"], 600);
    // The panel sets none: the dashboard's applies.
    assert_eq!(board["panels"][1]["refresh_interval"], 3600);
    assert_eq!(
        server.get("/api/v1/tenants/acme/dashboards/nope").await.0,
        404
    );
    assert_eq!(
        server.get("/api/v1/tenants/acme/panels/nope/data").await.0,
        404
    );
    assert_eq!(server.get("/api/v1/tenants/ghost/dashboards").await.0, 404);
    server.stop().await;
}

#[tokio::test]
async fn aggregation_rules_overrides_and_raw_limit() {
    let (dirs, server) = start(|c| c.panels.raw_limit = 10).await;
    // ≤ 8 h: raw rows. 32 rows is past raw_limit (10): the whole range is downsampled (M4)
    // to the chart's columns — each host's line runs to its newest row and keeps its true
    // minimum and maximum — never cut.
    let (_, raw) = data(
        &server,
        "cpu",
        "from=2024-01-01T00:00:00Z&to=2024-01-01T08:00:00Z&max_points=2",
    )
    .await;
    assert_eq!(raw["bucket"], "raw");
    assert_eq!(raw["truncated"], false);
    assert_eq!(raw["downsample"]["method"], "m4", "{raw}");
    assert_eq!(raw["downsample"]["columns"], 2);
    assert_eq!(raw["downsample"]["points_in"], 32);
    let out = raw["downsample"]["points_out"].as_u64().unwrap();
    assert!(out <= 16, "{raw}");
    let newest = chrono::DateTime::parse_from_rfc3339(&common::fixture::ts(450)).unwrap();
    for (h, host) in raw["series"].as_array().unwrap().iter().enumerate() {
        let points = host["points"].as_array().unwrap();
        assert_eq!(points[0][0], 1_704_067_200_000_i64, "{host}");
        assert_eq!(
            points.last().unwrap()[0],
            newest.timestamp_millis(),
            "{host}"
        );
        let cpus: Vec<f64> = (0..16i64)
            .map(|i| ((i * 7 + h as i64 * 13) % 100) as f64 + 0.5)
            .collect();
        let kept: Vec<f64> = points.iter().map(|p| p[1].as_f64().unwrap()).collect();
        let min = cpus.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = cpus.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        assert!(kept.contains(&min) && kept.contains(&max), "{host}");
    }
    // The panel's export still gives every raw row.
    let export = server
        .client
        .get(format!(
            "{}/api/v1/tenants/acme/panels/cpu/export?from=2024-01-01T00:00:00Z&to=2024-01-01T08:00:00Z&format=ndjson",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    assert_eq!(export.text().await.unwrap().lines().count(), 32);
    // Just past 8 h: one-minute buckets; disable_aggregation turns them off again.
    let (_, one_minute) = data(
        &server,
        "cpu",
        "from=2024-01-01T00:00:00Z&to=2024-01-01T08:00:00.001Z",
    )
    .await;
    assert_eq!(one_minute["bucket"], "1m");
    let (_, disabled) = data(&server, "cpu", &format!("{DAY}&disable_aggregation=true")).await;
    assert_eq!(disabled["bucket"], "raw");
    // Exactly 1 d: 1 minute, just past: 10 minutes; exactly 4 d: 10 minutes, just past: 1 hour.
    for (to, bucket) in [
        ("2024-01-02T00:00:00Z", "1m"),
        ("2024-01-02T00:00:00.001Z", "10m"),
        ("2024-01-05T00:00:00Z", "10m"),
        ("2024-01-05T00:00:00.001Z", "1h"),
    ] {
        let query = format!("from=2024-01-01T00:00:00Z&to={to}");
        let (status, body) = data(&server, "cpu", &query).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["bucket"], bucket, "to={to}");
        // Aggregated answers are never cut at raw_limit (10 here): the fixture's 2 days of
        // 30-minute rows give each host at least 48 points.
        let points: usize = body["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["points"].as_array().unwrap().len())
            .sum();
        assert_eq!(body["truncated"], false);
        assert!(points >= 2 * 48, "to={to}: {points} points");
    }
    // A panel's own rules and points guard.
    let panels = dirs.tenants().join("acme/panels");
    std::fs::write(
        panels.join("cpu_5m.yaml"),
        "panel:\n  type: timeseries\n  title: t\n  data_source:\n    table: metrics\n    columns: {value: cpu}\n  aggregation:\n    function: max\n    rules:\n      - {bucket: 5m}\n",
    )
    .unwrap();
    std::fs::write(
        panels.join("cpu_guard.yaml"),
        "panel:\n  type: timeseries\n  title: t\n  data_source:\n    table: metrics\n    columns: {value: cpu}\n  aggregation:\n    max_points_per_series: 10\n",
    )
    .unwrap();
    wait_for(&server, "cpu_guard").await;
    let (_, own) = data(&server, "cpu_5m", DAY).await;
    assert_eq!(own["bucket"], "5m");
    assert_eq!(own["aggregation"], "max");
    let (_, guarded) = data(&server, "cpu_guard", DAY).await;
    // 12 h in at most 10 points: 72 min, widened to the next ladder step.
    assert_eq!(guarded["bucket"], "3h");
    assert!(guarded["series"][0]["points"].as_array().unwrap().len() <= 10);
    server.stop().await;
}

/// Waits (up to 5 s) until the panel exists after a config change.
pub(crate) async fn wait_for(server: &TestServer, panel: &str) {
    for _ in 0..50 {
        if data(server, panel, DAY).await.0 == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("panel {panel} never appeared");
}

#[tokio::test]
async fn buckets_align_to_the_tenant_timezone() {
    let dirs = TestDirs::new(&[]);
    copy_dir(Path::new(FIXTURE), &dirs.tenants().join("acme"));
    let tenant_yaml = dirs.tenants().join("acme/tenant.yaml");
    // The tenant also replaces the server's bucket rules: one hour whatever the range.
    let text = std::fs::read_to_string(&tenant_yaml).unwrap().replace(
        "timezone: UTC",
        "timezone: Asia/Kolkata\naggregation:\n  rules:\n    - {bucket: 1h}",
    );
    std::fs::write(&tenant_yaml, text).unwrap();
    std::fs::write(
        dirs.tenants().join("acme/panels/hourly.yaml"),
        "panel:\n  type: timeseries\n  title: t\n  data_source:\n    table: metrics\n    columns: {value: cpu}\n  aggregation:\n    rules:\n      - {bucket: 1h}\n",
    )
    .unwrap();
    let server = TestServer::start(dirs.config()).await;
    write_fixture(&server, "acme").await;
    let (status, body) = data(&server, "hourly", DAY).await;
    assert_eq!(status, 200, "{body}");
    let points = body["series"][0]["points"].as_array().unwrap();
    // Kolkata is UTC+5:30: hour buckets start at :30 UTC; the first holds 00:00 (from 23:30).
    let first = points[0][0].as_i64().unwrap();
    assert_eq!(first, 1_704_065_400_000, "2023-12-31T23:30:00Z");
    assert!(
        points
            .iter()
            .all(|p| (p[0].as_i64().unwrap() / 60_000) % 60 == 30)
    );
    let (_, tenant_rule) = data(&server, "cpu", DAY).await;
    assert_eq!(tenant_rule["bucket"], "1h");
    server.stop().await;
}

/// An answer with more series than `panels.max_series` is a 422 naming the limit; narrowed
/// to one series it answers.
#[tokio::test]
async fn answers_past_the_series_limit_are_refused_naming_it() {
    let (_dirs, server) = start(|c| c.panels.max_series = 1).await;
    let (status, body) = data(&server, "cpu", DAY).await;
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("panels.max_series (1)") && error.contains("?series="),
        "{error}"
    );
    let (status, body) = data(&server, "cpu", &format!("{DAY}&series=a")).await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn request_values_are_data_never_sql() {
    let (_dirs, server) = start(|_| {}).await;
    let rows_before = server.count("acme", "metrics").await;
    // Treated as a series name that does not exist.
    let (status, body) = data(&server, "cpu", &format!("{DAY}&series=a'%20OR%20'1'%3D'1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["series"], serde_json::json!([]));
    let (_, only_a) = data(&server, "cpu", &format!("{DAY}&series=a")).await;
    assert_eq!(only_a["series"].as_array().unwrap().len(), 1);
    // A filter with SQL in it matches no row text.
    let (status, body) = data(
        &server,
        "errors",
        &format!("{DAY}&filter=')%20OR%201%3D1%20--"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_rows"], 0);
    for (query, param) in [
        ("sort=time;DROP%20TABLE%20metrics", "sort"),
        ("sort=message)%20UNION%20SELECT%201--", "sort"),
        ("order=desc;DELETE", "order"),
        ("page=1%20OR%201%3D1", "page"),
        ("page_size=0", "page_size"),
        ("from=now-1h;DROP%20TABLE%20metrics", "from"),
        ("to=1%20OR%201%3D1", "to"),
    ] {
        let (status, body) = data(&server, "errors", query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains(&format!("`{param}`")),
            "{query}: {body}"
        );
    }
    assert_eq!(server.count("acme", "metrics").await, rows_before);
    server.stop().await;
}

pub(crate) async fn metric(server: &TestServer, name: &str) -> u64 {
    let text = server
        .client
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {text}"))
}

/// Viewers of an answer in steady use never wait for its query: read in the last quarter of
/// its refresh interval, it is recomputed in the background and replaced before it expires.
#[tokio::test]
async fn answers_in_use_are_refreshed_before_they_expire() {
    let (_dirs, server) = start(|c| {
        let panel = std::fs::read_to_string(Path::new(FIXTURE).join("panels/cpu.yaml")).unwrap();
        std::fs::write(
            c.tenants_dir.join("acme/panels/live_cpu.yaml"),
            panel.replace("refresh_interval: 10m", "refresh_interval: 4s"),
        )
        .unwrap();
    })
    .await;
    let points = |body: &Value| {
        body["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["points"].as_array().unwrap().len())
            .sum::<usize>()
    };
    let started = Instant::now();
    let (status, first) = data(&server, "live_cpu", DAY).await;
    assert_eq!(status, 200, "{first}");
    let misses = metric(&server, "opsboard_panel_cache_misses_total").await;
    // A row the cached answer does not hold yet.
    let (status, body) = server
        .write(
            "acme",
            "metrics",
            "application/x-ndjson",
            "{\"time\":\"2024-01-01T11:59:00Z\",\"host\":\"c\",\"cpu\":1.5,\"mem\":2}\n",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    // Past three quarters of its life: still the cached answer, and its successor is made.
    let (_, ageing) = data(&server, "live_cpu", DAY).await;
    assert_eq!(points(&ageing), points(&first));
    let mut refreshed = Value::Null;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (_, body) = data(&server, "live_cpu", DAY).await;
        if points(&body) == points(&first) + 1 {
            refreshed = body;
            break;
        }
    }
    assert_ne!(refreshed, Value::Null, "not refreshed before it expired");
    // Past the first answer's deadline (4 s after it was made), well inside its successor's:
    // the successor lives its own 4 s, not what was left of its predecessor's.
    tokio::time::sleep(Duration::from_millis(4_800).saturating_sub(started.elapsed())).await;
    let (_, later) = data(&server, "live_cpu", DAY).await;
    assert_eq!(later, refreshed);
    assert_eq!(
        metric(&server, "opsboard_panel_cache_misses_total").await,
        misses,
        "no viewer computed it: every request was a hit"
    );
    server.stop().await;
}

#[tokio::test]
async fn hot_reload_keeps_the_last_good_panel_and_reports_errors() {
    let (dirs, server) = start(|c| {
        c.panels.reload_interval = opsboard::config::HumanDuration(Duration::from_millis(100))
    })
    .await;
    let (_, first) = data(&server, "cpu", DAY).await;
    assert_eq!(first["title"], "CPU");
    let hits = metric(&server, "opsboard_panel_cache_hits_total").await;
    let (_, again) = data(&server, "cpu", DAY).await;
    assert_eq!(again, first);
    assert_eq!(
        metric(&server, "opsboard_panel_cache_hits_total").await,
        hits + 1
    );

    let panel = dirs.tenants().join("acme/panels/cpu.yaml");
    let original = std::fs::read_to_string(&panel).unwrap();
    std::fs::write(
        &panel,
        original.replace("title: CPU", "title: CPU (edited)"),
    )
    .unwrap();
    let mut seen = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if data(&server, "cpu", DAY).await.1["title"] == "CPU (edited)" {
            seen = true;
            break;
        }
    }
    assert!(seen, "edit not live within 2 s");

    // Broken: an unknown column. The edited panel keeps serving; the error is reported.
    std::fs::write(&panel, original.replace("value: cpu", "value: cpux")).unwrap();
    let mut errors = Value::Null;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, body) = server.get("/api/v1/tenants/acme/config/errors").await;
        if body["ok"] == false {
            errors = body;
            break;
        }
    }
    assert_eq!(errors["serving_last_good"], true, "{errors}");
    let text = errors["errors"][0]["text"].as_str().unwrap();
    assert!(
        text.ends_with("panels/cpu.yaml:7:7: unknown column `cpux` in table `metrics`"),
        "{text}"
    );
    assert_eq!(data(&server, "cpu", DAY).await.1["title"], "CPU (edited)");

    // Fixed again: errors clear.
    std::fs::write(&panel, &original).unwrap();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if server.get("/api/v1/tenants/acme/config/errors").await.1["ok"] == true {
            break;
        }
    }
    assert_eq!(data(&server, "cpu", DAY).await.1["title"], "CPU");
    server.stop().await;
}

#[tokio::test]
async fn tenant_panels_override_shared_ones_and_template_errors_name_the_line() {
    let dirs = TestDirs::new(&[]);
    copy_dir(Path::new(FIXTURE), &dirs.tenants().join("acme"));
    let shared = dirs.root.path().join("panels");
    std::fs::create_dir_all(&shared).unwrap();
    let template_panel = |title: &str, template: &str| {
        format!("panel:\n  type: custom_template\n  title: {title}\n  template: |\n{template}")
    };
    std::fs::write(
        shared.join("note.yaml"),
        template_panel("Shared", "    <p>shared</p>\n"),
    )
    .unwrap();
    std::fs::write(
        shared.join("broken.yaml"),
        template_panel("Broken", "    <p>ok</p>\n    {{ 1 + [] }}\n"),
    )
    .unwrap();
    std::fs::write(
        dirs.tenants().join("acme/dashboards/more.yaml"),
        "dashboard:\n  name: More\n  panels:\n    - id: note\n    - id: broken\n",
    )
    .unwrap();
    let server = TestServer::start(dirs.config()).await;
    let (status, body) = data(&server, "note", DAY).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["html"], "<p>shared</p>");
    // A render-time error names the panel and the line in its YAML file.
    let (status, body) = data(&server, "broken", DAY).await;
    assert_eq!(
        status, 422,
        "a configuration fault, not the server's: {body}"
    );
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("panel `broken` template error at "),
        "{error}"
    );
    assert!(error.contains("panels/broken.yaml:6:"), "{error}");
    // The tenant's own panel of the same id wins.
    std::fs::write(
        dirs.tenants().join("acme/panels/note.yaml"),
        template_panel("Own", "    <p>own</p>\n"),
    )
    .unwrap();
    server.stop().await;
    let server = TestServer::start(dirs.config()).await;
    let (_, body) = data(&server, "note", DAY).await;
    assert_eq!(body["html"], "<p>own</p>");
    server.stop().await;
}

#[tokio::test]
async fn a_panel_on_a_table_created_later_loads_once_the_table_exists() {
    let dirs = TestDirs::new(&["late"]);
    let tenant = dirs.tenants().join("late");
    std::fs::create_dir_all(tenant.join("dashboards")).unwrap();
    std::fs::create_dir_all(tenant.join("panels")).unwrap();
    std::fs::write(
        tenant.join("dashboards/default.yaml"),
        "dashboard:\n  name: Late\n  panels:\n    - id: temp\n",
    )
    .unwrap();
    std::fs::write(
        tenant.join("panels/temp.yaml"),
        "panel:\n  type: kpi\n  title: Temperature\n  data_source:\n    table: sensors\n    columns: {value: celsius}\n",
    )
    .unwrap();
    let mut config = dirs.config();
    config.panels.reload_interval = opsboard::config::HumanDuration(Duration::from_millis(100));
    let server = TestServer::start(config).await;
    let (_, errors) = server.get("/api/v1/tenants/late/config/errors").await;
    assert_eq!(errors["ok"], false, "{errors}");
    assert!(
        errors["errors"][0]["text"].as_str().unwrap().ends_with(
            "panels/temp.yaml:5:5: unknown table `sensors` in tenant `late` (known: none)"
        ),
        "{errors}"
    );
    let (status, _) = server
        .write(
            "late",
            "sensors",
            "application/x-ndjson",
            "{\"time\": \"2024-01-01T06:00:00Z\", \"celsius\": 21.5}\n",
        )
        .await;
    assert_eq!(status, 200);
    let mut answer = Value::Null;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (status, body) = server
            .get(&format!("/api/v1/tenants/late/panels/temp/data?{DAY}"))
            .await;
        if status == 200 {
            answer = body;
            break;
        }
    }
    assert_eq!(answer["value"], 21.5, "{answer}");
    server.stop().await;
}
