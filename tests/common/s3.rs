//! A local S3-compatible server for tests: moto (`pip install "moto[server]"`), one per test
//! process on a free port, a fresh bucket per test. A watchdog shell stops it when the test
//! process exits, however it exits. Skipped with a message when moto is missing, unless
//! `OPSBOARD_S3=required` (as in `.ci/run`).

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Skips (or, with `OPSBOARD_S3=required`, fails) when moto is not installed.
pub fn skip_unless_available(test: &str) -> bool {
    let installed = Command::new("python3")
        .args(["-c", "import moto.server, flask_cors"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    match installed {
        true => false,
        false if std::env::var("OPSBOARD_S3").as_deref() == Ok("required") => {
            panic!(
                "{test}: an S3 server is required but moto is not installed (pip install \"moto[server]\")"
            )
        }
        false => {
            eprintln!("SKIPPED {test}: moto is not installed (pip install \"moto[server]\")");
            true
        }
    }
}

/// The shared server's endpoint (`http://127.0.0.1:<port>`).
pub fn endpoint() -> &'static str {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| start().map(|(_, endpoint)| endpoint))
        .as_deref()
        .unwrap_or_else(|e| panic!("S3 test server: {e}"))
}

/// A server of one test's own (to stop and resume it): its process and endpoint.
pub fn own_server() -> (std::process::Child, String) {
    start().unwrap_or_else(|e| panic!("S3 test server: {e}"))
}

fn start() -> Result<(std::process::Child, String), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("python3 -m moto.server: {e}"))?;
    super::after_exit(&format!("kill {} 2>/dev/null", child.id()))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((child, endpoint));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("moto did not listen on {endpoint} within 15 s"))
}

/// A new, empty bucket on the shared server; its name.
pub async fn fresh_bucket() -> String {
    fresh_bucket_on(endpoint()).await
}

/// A new, empty bucket on the server at `endpoint`; its name.
pub async fn fresh_bucket_on(endpoint: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "opsboard-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let resp = reqwest::Client::new()
        .put(format!("{endpoint}/{name}"))
        .send()
        .await
        .expect("create bucket");
    assert!(
        resp.status().is_success(),
        "create bucket: {}",
        resp.status()
    );
    name
}

/// `s3://bucket/prefix`; the server comes from [`env`].
pub fn url(bucket: &str, prefix: &str) -> String {
    format!("s3://{bucket}/{prefix}")
}

/// The standard AWS variables that reach the test server, as a node gets them. moto takes any
/// credentials; requests are signed (unsigned ones are anonymous, and moto refuses an
/// anonymous overwrite of a private object before looking at its conditions).
pub fn env() -> Vec<(&'static str, String)> {
    env_for(endpoint())
}

/// [`env`] for the server at `endpoint`.
pub fn env_for(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "opsboard-test".into()),
        ("AWS_SECRET_ACCESS_KEY", "opsboard-test-secret".into()),
    ]
}

/// The object keys under `prefix` in `bucket`.
pub async fn keys(bucket: &str, prefix: &str) -> Vec<String> {
    let body = reqwest::Client::new()
        .get(format!(
            "{}/{bucket}?list-type=2&prefix={prefix}",
            endpoint()
        ))
        .send()
        .await
        .expect("list bucket")
        .text()
        .await
        .expect("list body");
    body.split("<Key>")
        .skip(1)
        .filter_map(|part| part.split("</Key>").next())
        .map(str::to_string)
        .collect()
}
