//! Dashboard variables: values from the URL (`var-<name>`, repeated for a multi variable) reach
//! panels only as bound parameters and only when they are one of the variable's options; the
//! page shows a selector per variable and its panels follow it.

use std::path::Path;

use super::common::fixture::{DAY, FIXTURE, write_fixture};
use super::common::{TestDirs, TestServer, copy_dir};
use super::data;

/// The acme fixture plus a `by_host` dashboard with a query variable and a multi variable, and
/// panels reading them in `where:`, `sql:` and their title.
async fn start_with_variables() -> (TestDirs, TestServer) {
    let dirs = TestDirs::new(&[]);
    let tenant = dirs.tenants().join("acme");
    copy_dir(Path::new(FIXTURE), &tenant);
    std::fs::write(
        tenant.join("dashboards/by_host.yaml"),
        "dashboard:
  name: By host
  variables:
    - {name: host, label: Host, query: \"SELECT DISTINCT host FROM metrics ORDER BY host\"}
    - {name: hosts, values: [a, b, c], default: [a, b], multi: true}
  panels:
    - id: host_cpu
    - id: host_rows
    - id: host_list
    - id: host_health
    - id: all_cpu
",
    )
    .unwrap();
    std::fs::write(
        tenant.join("panels/host_cpu.yaml"),
        "panel:
  type: timeseries
  title: CPU of $host
  data_source:
    table: metrics
    columns: {value: cpu}
    query: {where: \"host = $host\"}
",
    )
    .unwrap();
    std::fs::write(
        tenant.join("panels/host_rows.yaml"),
        "panel:
  type: table
  title: Rows per host
  sql: \"SELECT host, count(*) AS n FROM metrics WHERE host IN ($hosts) AND time >= $from AND time < $to GROUP BY host ORDER BY host\"
",
    )
    .unwrap();
    std::fs::write(
        tenant.join("panels/host_list.yaml"),
        "panel:
  type: table
  title: Hosts
  data_source:
    table: metrics
    columns:
      - {name: host, link: {dashboard: by_host, vars: {host: \"{{ row.host }}\"}}}
      - {name: cpu}
",
    )
    .unwrap();
    std::fs::write(
        tenant.join("panels/all_cpu.yaml"),
        "panel:
  type: timeseries
  title: CPU per host
  data_source:
    table: metrics
    columns: {value: cpu, series_label: host}
  display:
    link: {dashboard: by_host, vars: {host: \"{{ row.series }}\"}}
",
    )
    .unwrap();
    std::fs::write(
        tenant.join("panels/host_health.yaml"),
        "panel:
  type: health_status
  title: Host health
  data_source:
    table: metrics
    columns: {service_name: host, status_value: cpu}
  display:
    link: {dashboard: by_host, vars: {host: \"{{ row.name }}\"}}
",
    )
    .unwrap();
    let server = TestServer::start(dirs.config()).await;
    write_fixture(&server, "acme").await;
    (dirs, server)
}

fn rows(body: &serde_json::Value) -> Vec<(String, i64)> {
    let mut rows: Vec<(String, i64)> = body["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows in {body}"))
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap()))
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn variables_bind_checked_values_and_refuse_others() {
    let (_dirs, server) = start_with_variables().await;
    // A picked value filters the panel and names it; without one the first option applies.
    let (status, b) = data(&server, "host_cpu", &format!("{DAY}&var-host=b")).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["title"], "CPU of b");
    let (_, a) = data(&server, "host_cpu", DAY).await;
    assert_eq!(a["title"], "CPU of a");
    assert_ne!(a["series"], b["series"], "each host its own points");

    // Multi: repeated parameters bind a list for IN; the default is both hosts.
    let (status, body) = data(&server, "host_rows", &format!("{DAY}&var-hosts=b")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(rows(&body), [("b".to_string(), 24)]);
    let (_, body) = data(
        &server,
        "host_rows",
        &format!("{DAY}&var-hosts=a&var-hosts=b"),
    )
    .await;
    assert_eq!(rows(&body), [("a".to_string(), 24), ("b".to_string(), 24)]);
    let (_, body) = data(&server, "host_rows", DAY).await;
    assert_eq!(rows(&body).len(), 2);
    // An export reads the same picked values.
    let csv = server
        .client
        .get(format!(
            "{}/api/v1/tenants/acme/panels/host_rows/export?{DAY}&var-hosts=b&format=csv",
            server.url
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.trim(), "host,n\nb,24", "{csv}");
    // `c` is an option with no rows: an empty answer, not an error.
    let (status, body) = data(&server, "host_rows", &format!("{DAY}&var-hosts=c")).await;
    assert_eq!(status, 200, "{body}");
    assert!(rows(&body).is_empty());

    // Anything else is a 400 naming the variable — hostile values included, never a 5xx.
    for (panel, query, variable) in [
        ("host_cpu", "var-host=zzz", "host"),
        ("host_cpu", "var-host=%27%20OR%201%3D1%20--", "host"),
        ("host_cpu", "var-host=a&var-host=b", "host"),
        (
            "host_rows",
            "var-hosts=a&var-hosts=%27)%20OR%20(1%3D1",
            "hosts",
        ),
    ] {
        let (status, body) = data(&server, panel, &format!("{DAY}&{query}")).await;
        assert_eq!(status, 400, "{panel}?{query}: {body}");
        let message = body.to_string();
        assert!(
            message.contains(&format!("variable `{variable}`")),
            "{message}"
        );
    }
    // A dashboard that does not place the panel is a bad parameter, named.
    let (status, body) = data(&server, "host_cpu", &format!("{DAY}&dashboard=default")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string()
            .contains("invalid `dashboard`: dashboard `default` does not place panel `host_cpu`"),
        "{body}"
    );
    // A variable no dashboard of this panel declares is ignored, as in Grafana.
    let (status, _) = data(&server, "host_cpu", &format!("{DAY}&var-other=1")).await;
    assert_eq!(status, 200);
}

/// A table column links each row to a dashboard with its variable set from the row, keeping the
/// range; a hostile value stays one URL-encoded parameter.
#[tokio::test]
async fn row_links_open_the_entity_page() {
    let (_dirs, server) = start_with_variables().await;
    let hostile = "x&var-host=a <b>";
    let (status, _) = server
        .write(
            "acme",
            "metrics",
            "application/x-ndjson",
            format!("{{\"time\":\"2024-01-01T01:00:00Z\",\"host\":{hostile:?},\"cpu\":1.0}}\n"),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = data(&server, "host_list", &format!("{DAY}&page_size=1000")).await;
    assert_eq!(status, 200, "{body}");
    let links: Vec<String> = body["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|row| row[0].as_str().map(str::to_string))
        .collect();
    assert!(links.iter().any(|l| l
        == "/t/acme/d/by_host?from=2024-01-01T00%3A00%3A00Z&to=2024-01-01T12%3A00%3A00Z&var-host=b"));
    assert!(
        links
            .iter()
            .any(|l| l.ends_with("&var-host=x%26var-host%3Da+%3Cb%3E")),
        "{links:?}"
    );
    assert!(body["links"][0][1].is_null(), "cpu does not link");
    // Health entries link the same way.
    let (status, body) = data(&server, "host_health", DAY).await;
    assert_eq!(status, 200, "{body}");
    let b = body["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "b")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(
        b["link"],
        "/t/acme/d/by_host?from=2024-01-01T00%3A00%3A00Z&to=2024-01-01T12%3A00%3A00Z&var-host=b"
    );
    // So do a timeseries' series.
    let (status, body) = data(&server, "all_cpu", DAY).await;
    assert_eq!(status, 200, "{body}");
    let a = &body["series"][0];
    assert_eq!(a["name"], "a");
    assert_eq!(
        a["link"],
        "/t/acme/d/by_host?from=2024-01-01T00%3A00%3A00Z&to=2024-01-01T12%3A00%3A00Z&var-host=a"
    );
    // Only the range the request gave is kept, relative as given: a resolved `to` would
    // freeze "now" into the link and the entity page would stop showing new rows.
    let (status, body) = data(&server, "host_list", "from=now-5000d&page_size=1000").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row[0] == "/t/acme/d/by_host?from=now-5000d&var-host=b"),
        "{body}"
    );
}

#[tokio::test]
async fn the_page_shows_selectors_and_its_panels_follow_them() {
    let (_dirs, server) = start_with_variables().await;
    let resp = server
        .client
        .get(format!(
            "{}/t/acme/d/by_host?{DAY}&var-host=b&var-hosts=a&var-hosts=c",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap().replace("&#x2f;", "/");
    assert!(html.contains("<select name=\"var-host\">"), "{html}");
    assert!(
        html.contains("<option value=\"b\" selected>b</option>"),
        "{html}"
    );
    assert!(
        html.contains("<select name=\"var-hosts\" multiple>"),
        "{html}"
    );
    assert!(html.contains("<option value=\"c\" selected>c</option>"));
    assert!(html.contains("<option value=\"b\">b</option>"));
    // The range is kept by the form; the panel shows the picked host.
    assert!(html.contains("type=\"hidden\" name=\"from\""), "{html}");
    assert!(html.contains("CPU of b"), "{html}");
    // A refresh asks for the page's own dashboard (the page adds its query string).
    assert!(html.contains("/t/acme/p/host_cpu/fragment?w="), "{html}");
    assert!(html.contains("dashboard=by_host"), "{html}");
    // The series that open their host's page are listed under the chart.
    assert!(
        html.contains("<p class=\"series-links\">Open: <a href=\"/t/acme/d/by_host?from="),
        "{html}"
    );
    // A value outside the options is refused on the page too.
    let resp = server
        .client
        .get(format!(
            "{}/t/acme/d/by_host?{DAY}&var-host=zzz",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}
