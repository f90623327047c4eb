//! The agents' protocols over HTTP against a real server: InfluxDB line protocol on every
//! InfluxDB version's write path, with those clients' credential forms, escapes and types
//! checked column by column, and bad input refused with nothing written.

mod common;

use std::io::Write;

use common::{TestDirs, TestServer};
use opsboard::auth::{Actor, Auth, NewKeyRequest, Scope};

async fn tenant_key(dirs: &TestDirs, tenant: &str, scopes: Vec<Scope>) -> String {
    let auth = Auth::open(&dirs.config(), opsboard::clock::system())
        .await
        .expect("auth");
    let request = NewKeyRequest {
        name: format!("{tenant} agent"),
        tenant: Some(tenant.to_string()),
        scopes,
        expires_at: None,
    };
    auth.create_key(&Actor::new("tests", None), request)
        .await
        .expect("key")
        .1
}

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(vec![], flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

async fn post(
    url: String,
    auth: Option<(&str, String)>,
    body: impl Into<reqwest::Body>,
    gzipped: bool,
) -> (u16, String) {
    let mut request = reqwest::Client::new().post(url).body(body);
    if let Some((name, value)) = auth {
        request = request.header(name, value);
    }
    if gzipped {
        request = request.header("content-encoding", "gzip");
    }
    let response = request.send().await.expect("post");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn line_protocol_is_taken_on_every_influxdb_write_path() {
    let dirs = TestDirs::new(&["acme", "globex"]);
    let server = TestServer::start(dirs.config()).await;
    let key = tenant_key(&dirs, "acme", vec![Scope::Ingest]).await;
    let url = &server.url;
    // InfluxDB 2.x: Token header, gzip body, seconds.
    let (s, b) = post(
        format!("{url}/api/v2/write?org=any&bucket=acme&precision=s"),
        Some(("authorization", format!("Token {key}"))),
        gzip("cpu,host=a usage=1.5 1700000000\ncpu,host=b usage=2.5 1700000000\n"),
        true,
    )
    .await;
    assert_eq!((s, b.as_str()), (204, ""));
    // InfluxDB 1.x: the key as `p`, and as the basic-auth password; `n` precision.
    let (s, b) = post(
        format!("{url}/write?db=acme&u=agent&p={key}&precision=n"),
        None,
        "cpu,host=c usage=3 1700000000000000000",
        false,
    )
    .await;
    assert_eq!(s, 204, "{b}");
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("agent:{key}"));
    let (s, b) = post(
        format!("{url}/write?db=acme&precision=ms"),
        Some(("authorization", format!("Basic {basic}"))),
        "cpu,host=d usage=4 1700000000000",
        false,
    )
    .await;
    assert_eq!(s, 204, "{b}");
    // InfluxDB 3 and opsboard's own path: a bearer key, nanoseconds by default.
    for path in ["/api/v3/write_lp?db=acme", "/api/v1/tenants/acme/write_lp"] {
        let (s, b) = post(
            format!("{url}{path}"),
            Some(("authorization", format!("Bearer {key}"))),
            "cpu,host=e usage=5 1700000000000000000",
            false,
        )
        .await;
        assert_eq!(s, 204, "{path}: {b}");
    }
    let rows = server
        .rows(
            "acme",
            "SELECT host, usage, CAST(time AS VARCHAR) AS t FROM cpu ORDER BY host, usage",
        )
        .await;
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["t"].as_str().unwrap().starts_with("2023-11-14T22:13:20")),
        "every precision lands on the same instant: {rows:?}"
    );
}

#[tokio::test]
async fn escapes_and_types_land_column_by_column() {
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    let key = tenant_key(&dirs, "acme", vec![Scope::Ingest]).await;
    let body = concat!(
        "# a comment, then a point with every escape\n",
        r#"Disk\ IO\,x,mount\ point=/var\,log,dev\=ice=sd\ a f=0.5,i=-7i,u=9u,b=TRUE,s="say \"hi\" \\ o/" 1700000000000000000"#,
        "\n",
        r#"disk_io_x f=1e3,i=1i,u=0u,b=f,s="" 1700000000000000001"#,
        "\n"
    );
    let (s, b) = post(
        format!("{}/api/v1/tenants/acme/write_lp", server.url),
        Some(("authorization", format!("Bearer {key}"))),
        body,
        false,
    )
    .await;
    assert_eq!(s, 204, "{b}");
    let rows = server
        .rows(
            "acme",
            "SELECT \"mount point\" AS m, \"dev=ice\" AS d, f, i, u, b, s, arrow_typeof(i) AS ti, \
             arrow_typeof(u) AS tu, arrow_typeof(b) AS tb, arrow_typeof(s) AS ts, \
             arrow_typeof(\"mount point\") AS tm FROM disk_io_x ORDER BY time",
        )
        .await;
    assert_eq!(rows[0]["m"], "/var,log");
    assert_eq!(rows[0]["d"], "sd a");
    assert_eq!(rows[0]["s"], r#"say "hi" \ o/"#);
    assert_eq!(
        (&rows[0]["f"], &rows[0]["i"], &rows[0]["u"], &rows[0]["b"]),
        (&0.5.into(), &(-7).into(), &9.into(), &true.into())
    );
    assert_eq!(
        (&rows[1]["f"], &rows[1]["b"], &rows[1]["s"]),
        (&1000.0.into(), &false.into(), &"".into())
    );
    assert_eq!(
        (
            &rows[0]["ti"],
            &rows[0]["tu"],
            &rows[0]["tb"],
            &rows[0]["ts"]
        ),
        (
            &"Int64".into(),
            &"UInt64".into(),
            &"Boolean".into(),
            &"Utf8".into()
        )
    );
    assert!(rows[0]["tm"].as_str().unwrap().starts_with("Dictionary"));
}

#[tokio::test]
async fn bad_lines_conflicts_and_strangers_write_nothing() {
    let dirs = TestDirs::new(&["acme", "globex"]);
    let server = TestServer::start(dirs.config()).await;
    let ingest = tenant_key(&dirs, "acme", vec![Scope::Ingest]).await;
    let read_only = tenant_key(&dirs, "acme", vec![Scope::Read]).await;
    let lp = |path: &str| format!("{}{path}", server.url);
    let bearer = |k: &str| Some(("authorization", format!("Bearer {k}")));
    let (s, _) = post(
        lp("/api/v1/tenants/acme/write_lp"),
        bearer(&ingest),
        "m v=1 1",
        false,
    )
    .await;
    assert_eq!(s, 204);
    // One bad line among good ones (and another measurement): nothing written, line named.
    let (s, b) = post(
        lp("/api/v1/tenants/acme/write_lp"),
        bearer(&ingest),
        "m v=2 2\nother x=1 2\nm v=oops 3\n",
        false,
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("\"line\":3") && b.contains("oops"), "{b}");
    // An integer into the float column `v`: refused with line and field, nothing written.
    let (s, b) = post(
        lp("/api/v1/tenants/acme/write_lp"),
        bearer(&ingest),
        "other x=1 2\nm v=5i 4\n",
        false,
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b.contains("\"line\":2") && b.contains("holds floats"),
        "{b}"
    );
    // A field may not take the timestamp's name.
    let (s, b) = post(
        lp("/api/v1/tenants/acme/write_lp"),
        bearer(&ingest),
        "m time=1 5",
        false,
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(server.count("acme", "m").await, 1);
    let (_, tables) = server.get("/api/v1/tenants/acme/tables").await;
    assert!(!tables.to_string().contains("\"other\""), "{tables}");
    // Credentials: none, read-only, another tenant's bucket, a wrong basic password.
    let (s, _) = post(lp("/api/v2/write?bucket=acme"), None, "m v=9 9", false).await;
    assert_eq!(s, 401);
    let token = |k: &str| Some(("authorization", format!("Token {k}")));
    let (s, _) = post(
        lp("/api/v2/write?bucket=acme"),
        token(&read_only),
        "m v=9 9",
        false,
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = post(
        lp("/api/v2/write?bucket=globex"),
        token(&ingest),
        "m v=9 9",
        false,
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = post(lp("/write?db=acme&p=opsb_wrong"), None, "m v=9 9", false).await;
    assert_eq!(s, 401);
    // A gzip bomb past the body limit, and a body that is not gzip.
    let bomb = gzip(&"m v=1 1\n".repeat(9_000_000));
    let (s, _) = post(lp("/api/v2/write?bucket=acme"), token(&ingest), bomb, true).await;
    assert_eq!(s, 413);
    let (s, _) = post(
        lp("/api/v2/write?bucket=acme"),
        token(&ingest),
        "m v=1 1",
        true,
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(server.count("acme", "m").await, 1);
}

/// The official InfluxDB 2.x Python client writes as it would to InfluxDB.
#[tokio::test]
async fn the_influxdb_python_client_writes_through_the_v2_api() {
    let installed = std::process::Command::new("python3")
        .args(["-c", "import influxdb_client"])
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        assert_ne!(
            std::env::var("OPSBOARD_CLIENTS").as_deref(),
            Ok("required"),
            "influxdb-client required (pip install influxdb-client)"
        );
        eprintln!("SKIPPED: no influxdb-client (pip install influxdb-client)");
        return;
    }
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    let key = tenant_key(&dirs, "acme", vec![Scope::Ingest]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/influx_v2.py");
    let url = server.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args([script, &url, &key, "acme"])
            .output()
            .expect("python3")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = server
        .rows(
            "acme",
            "SELECT \"room name\" AS room, kind, celsius, samples, ok, note, \
             CAST(time AS VARCHAR) AS t FROM sensor_reading ORDER BY time",
        )
        .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0]["room"], "lab, north=1");
    assert_eq!(rows[0]["celsius"], 21.5);
    assert_eq!(rows[0]["samples"], 12);
    assert_eq!(rows[0]["ok"], true);
    assert_eq!(rows[0]["note"], r#"said "hi" \ bye"#);
    assert_eq!(rows[0]["t"], "2023-11-14T22:13:20.123456789Z");
    assert_eq!(
        (&rows[1]["celsius"], &rows[1]["ok"]),
        (&(-3.25).into(), &false.into())
    );
    assert_eq!(
        (&rows[2]["kind"], &rows[2]["celsius"]),
        (&"hum".into(), &50.0.into())
    );
    assert_eq!(rows[2]["t"], "2023-11-14T22:13:22Z");
}

mod remote_write {
    use super::*;
    use prost::Message;

    /// The request as Prometheus encodes it, with the exemplars it may send (field 3), which
    /// opsboard reads past.
    #[derive(Clone, PartialEq, Message)]
    struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        timeseries: Vec<TimeSeries>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        samples: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        exemplars: Vec<Sample>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Label {
        #[prost(string, tag = "1")]
        name: String,
        #[prost(string, tag = "2")]
        value: String,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Sample {
        #[prost(double, tag = "1")]
        value: f64,
        #[prost(int64, tag = "2")]
        timestamp: i64,
    }

    fn series(name: &str, labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
        let mut all = vec![Label {
            name: "__name__".into(),
            value: name.into(),
        }];
        all.extend(labels.iter().map(|(n, v)| Label {
            name: (*n).into(),
            value: (*v).into(),
        }));
        TimeSeries {
            labels: all,
            samples: samples
                .iter()
                .map(|&(value, timestamp)| Sample { value, timestamp })
                .collect(),
            exemplars: vec![Sample {
                value: 1.0,
                timestamp: 1,
            }],
        }
    }

    fn snappy(request: &WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .unwrap()
    }

    #[tokio::test]
    async fn samples_land_per_metric_and_bad_requests_write_nothing() {
        let dirs = TestDirs::new(&["acme"]);
        let server = TestServer::start(dirs.config()).await;
        let key = tenant_key(&dirs, "acme", vec![Scope::Ingest]).await;
        let url = format!("{}/api/v1/tenants/acme/prom/write", server.url);
        let auth = || Some(("authorization", format!("Bearer {key}")));
        let stale = f64::from_bits(0x7ff0_0000_0000_0002);
        let request = WriteRequest {
            timeseries: vec![
                series(
                    "http_requests_total",
                    &[("job", "api"), ("value", "x")],
                    &[
                        (1.0, 1_700_000_000_000),
                        (2.5, 1_700_000_015_000),
                        (stale, 1_700_000_030_000),
                    ],
                ),
                series(
                    "up",
                    &[("job", "api"), ("instance", "a:9100")],
                    &[(1.0, 1_700_000_000_000)],
                ),
            ],
        };
        let (s, b) = post(url.clone(), auth(), snappy(&request), false).await;
        assert_eq!(s, 204, "{b}");
        let rows = server
            .rows(
                "acme",
                "SELECT job, label_value, value, CAST(time AS VARCHAR) AS t \
                 FROM http_requests_total ORDER BY time",
            )
            .await;
        assert_eq!(
            rows.len(),
            2,
            "the staleness marker is not stored: {rows:?}"
        );
        assert_eq!(
            (
                &rows[1]["job"],
                &rows[1]["label_value"],
                &rows[1]["value"],
                &rows[1]["t"]
            ),
            (
                &"api".into(),
                &"x".into(),
                &2.5.into(),
                &"2023-11-14T22:13:35Z".into()
            )
        );
        assert_eq!(server.count("acme", "up").await, 1);
        // Malformed: not snappy, snappy of garbage, a series without a name.
        let nameless = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1,
                }],
                exemplars: vec![],
            }],
        };
        let mut truncated = request.encode_to_vec();
        truncated.truncate(truncated.len() - 3);
        for (body, why) in [
            (b"plain text".to_vec(), "snappy"),
            (
                snap::raw::Encoder::new().compress_vec(&truncated).unwrap(),
                "remote-write",
            ),
            (snappy(&nameless), "__name__"),
        ] {
            let (s, b) = post(url.clone(), auth(), body, false).await;
            assert_eq!(s, 400, "{why}: {b}");
            assert!(b.contains(why), "{b}");
        }
        assert_eq!(server.count("acme", "up").await, 1);
        assert_eq!(server.count("acme", "http_requests_total").await, 2);
    }
}

/// A child process killed when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's Prometheus scrapes Debian's node exporter every second and remote-writes to
/// opsboard; a sample Prometheus stored itself is in opsboard with the same time and value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_writes_what_it_scrapes() {
    let present = ["prometheus", "prometheus-node-exporter"].iter().all(|b| {
        std::process::Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !present {
        assert_ne!(
            std::env::var("OPSBOARD_CLIENTS").as_deref(),
            Ok("required"),
            "apt-get install prometheus prometheus-node-exporter"
        );
        eprintln!("SKIPPED: no prometheus / prometheus-node-exporter (apt-get install them)");
        return;
    }
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    let key = tenant_key(&dirs, "acme", vec![Scope::Ingest]).await;
    let (node_port, prom_port) = (free_port(), free_port());
    let _node = Child(
        std::process::Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{node_port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("node exporter"),
    );
    let config = dirs.root.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s}}\n\
             scrape_configs:\n  - job_name: node\n    static_configs: [{{targets: ['127.0.0.1:{node_port}']}}]\n\
             remote_write:\n  - url: {}/api/v1/tenants/acme/prom/write\n    authorization: {{credentials: {key}}}\n    \
             queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms}}\n",
            server.url
        ),
    )
    .unwrap();
    let _prometheus = Child(
        std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dirs.root.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus"),
    );
    // A sample Prometheus stored itself: the oldest of idle CPU 0's last 30 s.
    let client = reqwest::Client::new();
    let selector = "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}[30s]";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (ms, value) = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus stored nothing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let Ok(r) = client
            .get(format!("http://127.0.0.1:{prom_port}/api/v1/query"))
            .query(&[("query", selector)])
            .send()
            .await
        else {
            continue;
        };
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        if let Some(first) = body["data"]["result"][0]["values"][0].as_array() {
            let ms = (first[0].as_f64().unwrap() * 1000.0).round() as i64;
            break (ms, first[1].as_str().unwrap().parse::<f64>().unwrap());
        }
    };
    let sql = format!(
        "SELECT value, job FROM node_cpu_seconds_total \
         WHERE cpu = '0' AND mode = 'idle' AND time = to_timestamp_millis({ms})"
    );
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "sample at {ms} never reached opsboard"
        );
        let (status, rows) = server.query("acme", &sql).await;
        if status == 200 && rows.as_array().is_some_and(|r| !r.is_empty()) {
            assert_eq!(rows[0]["value"].as_f64(), Some(value), "{rows}");
            assert_eq!(rows[0]["job"], "node");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
