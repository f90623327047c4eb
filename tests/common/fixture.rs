//! The `acme` fixture tenant (tests/fixtures/acme) and its data: 2 hosts of metrics every 30
//! minutes for 2 days from 2024-01-01, service health with a stale service, error logs.

use std::path::Path;

use super::{TestDirs, TestServer, copy_dir};

pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/acme");
pub const DAY: &str = "from=2024-01-01T00:00:00Z&to=2024-01-01T12:00:00Z";

pub fn ts(minutes: i64) -> String {
    let t = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap()
        + chrono::Duration::minutes(minutes);
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub async fn write_fixture(server: &TestServer, tenant: &str) {
    let mut metrics = String::new();
    for i in 0..96i64 {
        for (h, host) in ["a", "b"].iter().enumerate() {
            let cpu = ((i * 7 + h as i64 * 13) % 100) as f64 + 0.5;
            let mem = 40.0 + (i % 60) as f64;
            metrics.push_str(&format!(
                "{{\"time\":\"{}\",\"host\":\"{host}\",\"cpu\":{cpu},\"mem\":{mem}}}\n",
                ts(i * 30)
            ));
        }
    }
    let mut health = String::new();
    for hour in 0..12i64 {
        health.push_str(&format!(
            "{{\"time\":\"{}\",\"name\":\"a\",\"status\":0}}\n",
            ts(hour * 60)
        ));
        let (status, error) = if hour == 11 {
            (2, "\"disk full <b>\"")
        } else {
            (1, "null")
        };
        health.push_str(&format!(
            "{{\"time\":\"{}\",\"name\":\"b\",\"status\":{status},\"error\":{error}}}\n",
            ts(hour * 60)
        ));
        if hour <= 6 {
            health.push_str(&format!(
                "{{\"time\":\"{}\",\"name\":\"c\",\"status\":0}}\n",
                ts(hour * 60)
            ));
        }
    }
    let severities = ["INFO", "ERROR", "WARNING", "ERROR", "CRITICAL", "ERROR"];
    let mut errors = String::new();
    for (i, severity) in severities.iter().enumerate() {
        errors.push_str(&format!(
            "{{\"time\":\"{}\",\"service\":\"svc{}\",\"severity\":\"{severity}\",\"message\":\"m{i}\",\"bytes\":{},\"took\":{}}}\n",
            ts(60 + i as i64 * 60),
            i % 3,
            1536 * i,
            30.5 * i as f64
        ));
    }
    for (table, body) in [
        ("metrics", metrics),
        ("service_health", health),
        ("error_logs", errors),
    ] {
        let (status, body) = server
            .write(tenant, table, "application/x-ndjson", body)
            .await;
        assert_eq!(status, 200, "{table}: {body}");
    }
}

pub async fn start(
    configure: impl FnOnce(&mut opsboard::config::ServerConfig),
) -> (TestDirs, TestServer) {
    let dirs = TestDirs::new(&[]);
    copy_dir(Path::new(FIXTURE), &dirs.tenants().join("acme"));
    let mut config = dirs.config();
    configure(&mut config);
    let server = TestServer::start(config).await;
    write_fixture(&server, "acme").await;
    (dirs, server)
}
