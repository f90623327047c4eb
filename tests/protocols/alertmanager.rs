//! Alerts out to Debian's Alertmanager through its own API: a rule fires, Alertmanager lists
//! the alert with its labels, annotations and link back; the rule clears, the alert is gone.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

/// Alertmanager's active alerts of tenant acme, once it answers.
async fn active(client: &reqwest::Client, port: u16) -> Vec<Value> {
    let Ok(response) = client
        .get(format!("http://127.0.0.1:{port}/api/v2/alerts"))
        .send()
        .await
    else {
        return vec![];
    };
    let alerts: Value = response.json().await.unwrap_or_default();
    alerts
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["labels"]["tenant"] == "acme")
        .cloned()
        .collect()
}

async fn cpu(server: &TestServer, value: f64) {
    let now = chrono::Utc::now().timestamp_millis();
    let row = format!("{{\"time\":{now},\"host\":\"web-1\",\"cpu\":{value}}}\n");
    let (status, body) = server
        .write("acme", "metrics", "application/x-ndjson", row)
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_and_resolved_alerts_reach_a_real_alertmanager() {
    if !binary_present(
        "prometheus-alertmanager",
        "--version",
        "apt-get install prometheus-alertmanager",
    ) {
        return;
    }
    let port = free_port();
    let dirs = TestDirs::new(&["acme"]);
    let am_config = dirs.root.path().join("alertmanager.yml");
    std::fs::write(
        &am_config,
        "route: {receiver: quiet}\nreceivers: [{name: quiet}]\n",
    )
    .unwrap();
    let _alertmanager = Child(
        std::process::Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", am_config.display()))
            .arg(format!(
                "--storage.path={}",
                dirs.root.path().join("am").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("alertmanager"),
    );
    let tenant = dirs.tenants().join("acme");
    let alerts_dir = tenant.join("alerts");
    std::fs::create_dir_all(&alerts_dir).unwrap();
    std::fs::create_dir_all(tenant.join("dashboards")).unwrap();
    std::fs::write(
        tenant.join("tenant.yaml"),
        "name: Acme\ntables:\n  metrics:\n    tags: [host]\n    fields: {cpu: float}\n",
    )
    .unwrap();
    std::fs::write(
        tenant.join("dashboards/default.yaml"),
        "dashboard:\n  name: Acme\n  panels: []\n",
    )
    .unwrap();
    std::fs::write(
        alerts_dir.join("cpu.yaml"),
        format!(
            r#"rules:
  - name: cpu_high
    sql: SELECT host, last_value(cpu ORDER BY time) AS value FROM metrics WHERE time >= $from AND time < $to GROUP BY host
    condition: "> 90"
    every: 1s
    range: 5m
    severity: critical
    no_data_state: ok
    exec_err_state: ok
    message: "CPU on {{{{ host }}}} at {{{{ value }}}}%"
    annotations: {{runbook: "https://runbooks.example/cpu"}}
channels:
  - {{name: am, type: alertmanager, url: "http://127.0.0.1:{port}"}}
routes:
  - {{channels: [am], repeat_interval: 1m}}
"#
        ),
    )
    .unwrap();
    let mut config = dirs.config();
    config.alerts.allowed_targets = vec!["127.0.0.0/8".parse().unwrap()];
    config.alerts.external_url = Some("https://ops.example/".into());
    let server = TestServer::start(config).await;
    let client = reqwest::Client::new();
    cpu(&server, 97.0).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let alert = loop {
        if Instant::now() > deadline {
            let (_, state) = server.get("/api/v1/tenants/acme/alerts").await;
            panic!("the alert never reached Alertmanager: {state:#}");
        }
        if let Some(a) = active(&client, port).await.into_iter().next() {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(alert["labels"]["alertname"], "cpu_high");
    assert_eq!(alert["labels"]["host"], "web-1");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(alert["annotations"]["message"], "CPU on web-1 at 97.0%");
    assert_eq!(
        alert["annotations"]["runbook"],
        "https://runbooks.example/cpu"
    );
    assert_eq!(alert["generatorURL"], "https://ops.example/t/acme/alerts");
    // Held two repeat intervals ahead, not Alertmanager's 5-minute default.
    let ends = chrono::DateTime::parse_from_rfc3339(alert["endsAt"].as_str().unwrap()).unwrap();
    let ahead = ends.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    assert!(
        (90_000..=120_000).contains(&ahead),
        "endsAt {ahead} ms ahead"
    );

    cpu(&server, 12.0).await;
    loop {
        assert!(
            Instant::now() < deadline,
            "the alert never resolved in Alertmanager"
        );
        if active(&client, port).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
