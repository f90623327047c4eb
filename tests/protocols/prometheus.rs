//! Prometheus remote write 1.0: hand-made requests at the edges, and Debian's Prometheus.

use super::*;

use prost::Message;

/// The request as Prometheus encodes it, with the exemplars it may send (field 3), which
/// opsboard reads past.
#[derive(Clone, PartialEq, Message)]
pub(super) struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub(super) timeseries: Vec<TimeSeries>,
}
#[derive(Clone, PartialEq, Message)]
pub(super) struct TimeSeries {
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

pub(super) fn series(name: &str, labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
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

pub(super) fn snappy(request: &WriteRequest) -> Vec<u8> {
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

/// Debian's Prometheus scrapes Debian's node exporter every second and remote-writes to
/// opsboard; a sample Prometheus stored itself is in opsboard with the same time and value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_writes_what_it_scrapes() {
    let install = "apt-get install prometheus prometheus-node-exporter";
    if !["prometheus", "prometheus-node-exporter"]
        .iter()
        .all(|b| binary_present(b, "--version", install))
    {
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

/// Remote write 2.0's request: labels are pairs of references into `symbols`.
#[derive(Clone, PartialEq, Message)]
struct RequestV2 {
    #[prost(string, repeated, tag = "4")]
    symbols: Vec<String>,
    #[prost(message, repeated, tag = "5")]
    timeseries: Vec<SeriesV2>,
}
#[derive(Clone, PartialEq, Message)]
struct SeriesV2 {
    #[prost(uint32, repeated, tag = "1")]
    labels_refs: Vec<u32>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<Sample>,
}

#[tokio::test]
async fn remote_write_2_is_taken_and_counted_and_bad_references_write_nothing() {
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    let key = tenant_key(&dirs, "acme", vec![Scope::Ingest]).await;
    let url = format!("{}/api/v1/tenants/acme/prom/write", server.url);
    let v2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
    let symbols = [
        "", "__name__", "up", "job", "api", "instance", "a:9100", "b:9100",
    ];
    let request = RequestV2 {
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        timeseries: vec![
            SeriesV2 {
                labels_refs: vec![1, 2, 3, 4, 5, 6],
                samples: vec![
                    Sample {
                        value: 1.0,
                        timestamp: 1_700_000_000_000,
                    },
                    Sample {
                        value: 0.0,
                        timestamp: 1_700_000_015_000,
                    },
                ],
            },
            SeriesV2 {
                labels_refs: vec![1, 2, 3, 4, 5, 7],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1_700_000_000_000,
                }],
            },
        ],
    };
    let send = |request: &RequestV2, content_type: &'static str| {
        let body = snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .unwrap();
        reqwest::Client::new()
            .post(&url)
            .bearer_auth(&key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let response = send(&request, v2).await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        response.headers()["x-prometheus-remote-write-samples-written"],
        "3"
    );
    let rows = server
        .rows(
            "acme",
            "SELECT instance, job, value FROM up ORDER BY instance, time",
        )
        .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(
        (&rows[2]["instance"], &rows[2]["job"]),
        (&"b:9100".into(), &"api".into())
    );

    let mut dangling = request.clone();
    dangling.timeseries[1].labels_refs[5] = 99;
    let response = send(&dangling, v2).await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("refers to symbol 99")
    );
    let mut odd = request.clone();
    odd.timeseries[0].labels_refs.pop();
    assert_eq!(send(&odd, v2).await.unwrap().status(), 400);
    let unknown = "application/x-protobuf;proto=io.prometheus.write.v3.Request";
    assert_eq!(send(&request, unknown).await.unwrap().status(), 415);
    assert_eq!(server.count("acme", "up").await, 3, "nothing more written");
}
