//! Server-rendered pages: golden HTML fragments for every panel type (drawn from the golden
//! panel answers, so pages and API agree), and the pages over HTTP — dashboard grid, drill-down
//! with exports and the aggregation toggle, report, fragments, chart SVG, config-error banner,
//! and a failing panel that stays inside its box.

mod common;

use std::path::Path;

use common::{TestDirs, TestServer, copy_dir};
use opsboard::panels::PanelAnswer;
use opsboard::render::FragmentOptions;
use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/acme");
const ANSWERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/panels");
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/fragments");

fn assert_golden(name: &str, actual: &str) {
    let path = Path::new(GOLDEN).join(format!("{name}.html"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(GOLDEN).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing; run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(actual, expected, "golden fragment {name} differs");
}

/// The golden chain: each golden JSON answer reads back into its typed answer, writes out as
/// the same JSON, and draws the golden fragment.
#[test]
fn golden_fragments_per_panel_type() {
    let options = FragmentOptions {
        tz: chrono_tz::UTC,
        // 2024-01-01T12:00:00Z, the fixture range's end.
        now_ms: 1_704_110_400_000,
        chart_width: 800,
        chart_height: 260,
        link_path: "/t/acme/p/errors".into(),
        query: vec![("from".into(), "2024-01-01T00:00:00Z".into())],
        row_actions: vec![],
    };
    for name in [
        "timeseries_1m",
        "timeseries_raw",
        "kpi",
        "health_status",
        "table",
        "custom_template",
        "custom_image",
    ] {
        let json: Value = serde_json::from_str(
            &std::fs::read_to_string(Path::new(ANSWERS).join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let answer: PanelAnswer = serde_json::from_value(json.clone())
            .unwrap_or_else(|e| panic!("{name}: the golden answer does not read back: {e}"));
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            json,
            "{name}: the typed answer writes other JSON than it read"
        );
        let html = answer.fragment(&options).unwrap();
        assert_golden(name, &html);
    }
}

async fn page(server: &TestServer, path: &str) -> (u16, String) {
    let resp = server
        .client
        .get(format!("{}{path}", server.url))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap().replace("&#x2f;", "/"))
}

async fn start() -> (TestDirs, TestServer) {
    let dirs = TestDirs::new(&[]);
    copy_dir(Path::new(FIXTURE), &dirs.tenants().join("acme"));
    let server = TestServer::start(dirs.config()).await;
    (dirs, server)
}

const RANGE: &str = "from=2024-01-01T00:00:00Z&to=2024-01-01T12:00:00Z";

#[tokio::test]
async fn dashboard_drill_down_report_and_fragments() {
    let (_dirs, server) = start().await;
    let body = "{\"time\":\"2024-01-01T01:00:00Z\",\"host\":\"a\",\"cpu\":10,\"mem\":40}\n{\"time\":\"2024-01-01T02:00:00Z\",\"host\":\"a\",\"cpu\":20,\"mem\":41}\n";
    assert_eq!(
        server
            .write("acme", "metrics", "application/x-ndjson", body)
            .await
            .0,
        200
    );

    let resp = server
        .client
        .get(format!("{}/t/acme?{RANGE}", server.url))
        .send()
        .await
        .unwrap();
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let (status, html) = page(&server, &format!("/t/acme?{RANGE}")).await;
    assert_eq!(status, 200);
    assert!(
        !html.contains(" style=\""),
        "no inline styles: the policy allows none"
    );
    for (id, class) in [
        ("cpu", "c1 w8 r1 h2"),
        ("mem_kpi", "c9 w4 r1 h1"),
        ("errors", "c1 w12 r3 h3"),
    ] {
        assert!(
            html.contains(&format!(
                "class=\"panel {class}\" data-fragment=\"/t/acme/p/{id}/fragment?w="
            )),
            "{id}: {html}"
        );
    }
    assert!(
        html.contains("<svg class=\"chart\""),
        "the timeseries is drawn inline"
    );
    assert!(
        html.contains("<span class=\"kpi-value\">41.0%</span>"),
        "{html}"
    );
    // Range presets keep the path; the custom form shows the current range.
    assert!(
        html.contains("href=\"/t/acme/d/default?from=now-7d&amp;to=now\""),
        "{html}"
    );
    assert!(html.contains("value=\"2024-01-01T00:00:00Z\""));
    assert!(!html.contains("<script>"), "no inline script");

    let (status, html) = page(&server, &format!("/t/acme/p/cpu?{RANGE}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!(
            "/api/v1/tenants/acme/panels/cpu/export?{}&amp;format=csv",
            RANGE.replace('&', "&amp;").replace(':', "%3A")
        )),
        "{html}"
    );
    assert!(html.contains("Show raw data"));
    assert!(
        html.contains("<th scope=\"col\">Series</th>"),
        "the data under the chart"
    );
    let (_, raw) = page(
        &server,
        &format!("/t/acme/p/cpu?{RANGE}&disable_aggregation=true"),
    )
    .await;
    assert!(raw.contains(">Aggregate<"), "the toggle flips");
    assert!(raw.contains("raw rows"));

    let (status, report) = page(&server, &format!("/t/acme/r/mem_kpi?{RANGE}")).await;
    assert_eq!(status, 200);
    assert!(report.contains("<body class=\"report\">"));
    assert!(
        !report.contains("<header class=\"top\">"),
        "a report has no navigation"
    );

    // A refreshed fragment keeps the size the page drew it at.
    let (_, chart) = page(
        &server,
        &format!("/t/acme/p/cpu/fragment?w=500&h=200&{RANGE}"),
    )
    .await;
    assert!(chart.contains("width=\"500\" height=\"200\""), "{chart}");
    let (status, fragment) = page(&server, &format!("/t/acme/p/mem_kpi/fragment?{RANGE}")).await;
    assert_eq!(status, 200);
    assert!(
        fragment.trim_start().starts_with("<div class=\"kpi\">"),
        "{fragment}"
    );

    let resp = server
        .client
        .get(format!("{}/t/acme/p/cpu.svg?{RANGE}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
    assert!(resp.text().await.unwrap().starts_with("<svg"));

    let resp = server
        .client
        .get(format!("{}/t/acme/p/cpu.png?{RANGE}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert!(
        resp.bytes()
            .await
            .unwrap()
            .starts_with(b"\x89PNG\r\n\x1a\n")
    );

    let (status, missing) = page(&server, "/t/acme/d/nope").await;
    assert_eq!(status, 404);
    assert!(missing.contains("<h1>404 Not Found</h1>"), "{missing}");
    assert!(
        missing.contains("no dashboard `nope` in tenant `acme`"),
        "{missing}"
    );
    assert_eq!(page(&server, "/t/ghost").await.0, 404);
    let (status, home) = page(&server, "/").await;
    assert_eq!(status, 200);
    assert!(home.contains("href=\"/t/acme\""));
    server.stop().await;
}

#[tokio::test]
async fn broken_panels_stay_in_their_box_and_config_errors_show_a_banner() {
    let (dirs, server) = start().await;
    // A panel whose SQL fails when it runs (integer division by zero).
    std::fs::write(
        dirs.tenants().join("acme/panels/boom.yaml"),
        "panel:\n  type: kpi\n  title: Boom\n  sql: \"SELECT CAST(1 AS BIGINT) / CAST(0 AS BIGINT) AS value\"\n",
    )
    .unwrap();
    std::fs::write(
        dirs.tenants().join("acme/dashboards/broken.yaml"),
        "dashboard:\n  name: Broken\n  panels:\n    - id: boom\n    - id: mem_kpi\n",
    )
    .unwrap();
    server.stop().await;
    let server = TestServer::start(dirs.config()).await;
    let (status, html) = page(&server, &format!("/t/acme/d/broken?{RANGE}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("class=\"panel-error\" role=\"alert\">panel `boom`: "),
        "{html}"
    );
    assert!(html.contains("Divide by zero"), "{html}");
    assert!(
        html.contains("id=\"title-mem_kpi\""),
        "the other panels still render"
    );
    server.stop().await;

    // A broken file: the last good configuration is gone (fresh start), so the page shows the
    // banner with the exact place.
    std::fs::write(
        dirs.tenants().join("acme/panels/cpu.yaml"),
        "panel:\n  type: timeseries\n  titel: x\n",
    )
    .unwrap();
    let server = TestServer::start(dirs.config()).await;
    let (status, html) = page(&server, "/t/acme").await;
    assert_eq!(status, 200);
    assert!(html.contains("class=\"banner\""), "{html}");
    assert!(
        html.contains("panels/cpu.yaml:3:3: panel: unknown field `titel`"),
        "{html}"
    );
    server.stop().await;
}
