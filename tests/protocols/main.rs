//! The agents' protocols over HTTP against a real server, with the agents' own clients where
//! they exist: InfluxDB line protocol (`influx`), Prometheus remote write (`prometheus`) and OTLP
//! (`otlp`).
//! Bad input is refused with nothing written.

#[path = "../common/mod.rs"]
mod common;

mod alertmanager;
mod influx;
mod otlp;
mod prometheus;

use std::io::Write;

pub use common::{TestDirs, TestServer};
pub use opsboard::auth::{Actor, Auth, NewKeyRequest, Scope};

pub async fn tenant_key(dirs: &TestDirs, tenant: &str, scopes: Vec<Scope>) -> String {
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

pub fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(vec![], flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

pub async fn post(
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

/// A child process killed when the test ends, however it ends.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `binary` runs (`binary arg` succeeds); when not, the test is skipped — unless the run
/// requires the clients (`OPSBOARD_CLIENTS=required`), then it fails naming `install`.
pub fn binary_present(binary: &str, arg: &str, install: &str) -> bool {
    let found = std::process::Command::new(binary)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert_ne!(
            std::env::var("OPSBOARD_CLIENTS").as_deref(),
            Ok("required"),
            "{install} required"
        );
        eprintln!("SKIPPED: no {binary} ({install})");
    }
    found
}

/// POSTs `body` as `content_type` with the key; the status and the body's bytes.
pub async fn post_bytes(url: &str, key: &str, content_type: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap_or_default().to_vec())
}

/// Whether Python can import `module`; when not, the test is skipped — unless the run requires
/// the clients (`OPSBOARD_CLIENTS=required`, as `.ci/run` sets), then it fails.
pub fn python_has(module: &str, install: &str) -> bool {
    let installed = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        assert_ne!(
            std::env::var("OPSBOARD_CLIENTS").as_deref(),
            Ok("required"),
            "{install} required"
        );
        eprintln!("SKIPPED: {module} missing ({install})");
    }
    installed
}

/// Runs `tests/clients/<script>` with `args`; fails the test with its output when it fails.
pub async fn run_client(script: &str, args: Vec<String>) {
    let path = format!("{}/tests/clients/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(path)
            .args(args)
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
}

/// A megabyte label value and a request of 100,000 distinct series, on each protocol: a 400
/// naming the limit, nothing written, the server fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sizes_are_refused_on_every_protocol() {
    use prost::Message;
    let dirs = TestDirs::new(&["acme"]);
    let server = TestServer::start(dirs.config()).await;
    let key = tenant_key(&dirs, "acme", vec![Scope::Ingest]).await;
    let base = format!("{}/api/v1/tenants/acme", server.url);
    let huge = "x".repeat(1 << 20);
    let many = 100_000;
    let t = 1_700_000_000_000i64;

    let lines: String = (0..many)
        .map(|i| format!("m,id={i} v=1 {t}000000\n"))
        .collect();
    let rw_many = prometheus::WriteRequest {
        timeseries: (0..many)
            .map(|i| prometheus::series("m", &[("id", &i.to_string())], &[(1.0, t)]))
            .collect(),
    };
    let rw_huge = prometheus::WriteRequest {
        timeseries: vec![prometheus::series("m", &[("id", &huge)], &[(1.0, t)])],
    };
    let otlp_many = otlp::gauge_request(
        (0..many)
            .map(|i| ("m", vec![("id", i.to_string())]))
            .collect(),
    );
    let otlp_huge = otlp::gauge_request(vec![("m", vec![("id", huge.clone())])]);
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "write_lp",
            "text/plain",
            lines.into_bytes(),
            "distinct series per write",
        ),
        (
            "write_lp",
            "text/plain",
            format!("m,id={huge} v=1").into_bytes(),
            "ingest.max_tag_bytes",
        ),
        (
            "prom/write",
            "application/x-protobuf",
            prometheus::snappy(&rw_many),
            "distinct series per write",
        ),
        (
            "prom/write",
            "application/x-protobuf",
            prometheus::snappy(&rw_huge),
            "ingest.max_tag_bytes",
        ),
        (
            "otlp/v1/metrics",
            "application/x-protobuf",
            otlp_many.encode_to_vec(),
            "distinct series per write",
        ),
        (
            "otlp/v1/metrics",
            "application/x-protobuf",
            otlp_huge.encode_to_vec(),
            "ingest.max_tag_bytes",
        ),
    ];
    for (path, content_type, body, says) in cases {
        let (status, text) = post_bytes(&format!("{base}/{path}"), &key, content_type, body).await;
        let text = String::from_utf8_lossy(&text).to_string();
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains(says), "{path}: {says:?} not in {text:.300}");
    }
    let (status, body) = server.query("acme", "SELECT count(*) AS n FROM m").await;
    assert_ne!(status, 200, "table m must not exist: {body}");
    let (s, b) = post(
        format!("{base}/write_lp"),
        Some(("authorization", format!("Bearer {key}"))),
        "m,id=1 v=1",
        false,
    )
    .await;
    assert_eq!(s, 204, "the server is fine afterwards: {b}");
}
