//! Test harness: an in-process server on port 0 over temp dirs, plus helpers to talk to it.
#![allow(dead_code)]

/// Runs each named `async fn(Db)` as two tests, `sqlite::name` and `postgres::name`.
#[allow(unused_macros)]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name(super::Db::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name(super::Db::Postgres).await } )*
        }
    };
}

pub mod alerting;
pub mod fixture;
pub mod idp;
pub mod pg;
pub mod s3;
pub mod session;

use std::path::{Path, PathBuf};

use opsboard::config::ServerConfig;
use opsboard::server::{ServeOptions, ServerError, serve};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A data dir and a tenants dir with the given tenant folders.
pub struct TestDirs {
    pub root: tempfile::TempDir,
}

impl TestDirs {
    pub fn new(tenants: &[&str]) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        for t in tenants {
            std::fs::create_dir_all(root.path().join("tenants").join(t)).expect("tenant dir");
        }
        Self { root }
    }

    pub fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub fn tenants(&self) -> PathBuf {
        self.root.path().join("tenants")
    }

    pub fn config(&self) -> ServerConfig {
        ServerConfig {
            listen: "127.0.0.1:0".into(),
            data_dir: self.data(),
            tenants_dir: self.tenants(),
            panels_dir: self.root.path().join("panels"),
            ..Default::default()
        }
    }

    /// WAL segment files of one table, oldest first.
    pub fn wal_segments(&self, tenant: &str, table: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(self.data().join("wal").join(tenant).join(table))
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
        files.sort();
        files
    }

    /// Raw Parquet files of one table under the local object store (not its rollups).
    pub fn parquet_files(&self, tenant: &str, table: &str) -> Vec<PathBuf> {
        let mut out = vec![];
        walk_parquet(
            &self.data().join("objects").join(tenant).join(table),
            &mut out,
        );
        out.sort();
        out
    }

    /// Parquet files of one table's rollups under the local object store.
    pub fn rollup_files(&self, tenant: &str, table: &str) -> Vec<PathBuf> {
        let mut out = vec![];
        walk_parquet(
            &self
                .data()
                .join("objects")
                .join(tenant)
                .join(table)
                .join("_rollups"),
            &mut out,
        );
        out.sort();
        out
    }
}

/// The Parquet data files under `dir`, not descending into `_rollups` folders below it.
fn walk_parquet(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.ends_with("_rollups") {
            walk_parquet(&p, out);
        } else if p.extension().is_some_and(|x| x == "parquet")
            && !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('_'))
        {
            out.push(p);
        }
    }
}

/// A global key with every scope, so tests can call any route.
pub async fn admin_key(config: &ServerConfig) -> String {
    opsboard::auth::operator_key(config, "tests")
        .await
        .expect("create a key")
}

/// A client that sends `key` on every request.
pub fn client_with_key(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {key}").parse().expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// Starts the real `opsboard serve` binary on port 0 over `dirs` with `extra` arguments;
/// returns the process and its base URL (read from its first line of output).
pub fn spawn_opsboard(dirs: &TestDirs, extra: &[&str]) -> (std::process::Child, String) {
    spawn_opsboard_with(dirs, extra, &[])
}

/// [`spawn_opsboard`] with environment variables set for the process.
pub fn spawn_opsboard_with(
    dirs: &TestDirs,
    extra: &[&str],
    env: &[(&str, String)],
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_opsboard"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .arg("--data-dir")
        .arg(dirs.data())
        .arg("--tenants-dir")
        .arg(dirs.tenants())
        // No config file here: embedded defaults.
        .current_dir(dirs.root.path())
        .env("OPSBOARD_LOG", "opsboard=warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn opsboard");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let url = line.trim().rsplit(' ').next().expect("url").to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    (child, url)
}

/// Runs `cleanup` (a shell command) once this test process has exited, however it exits: the
/// way shared helper servers (PostgreSQL, S3) started for a test binary are stopped.
pub fn after_exit(cleanup: &str) -> Result<(), String> {
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {cleanup}",
        pid = std::process::id()
    );
    std::process::Command::new("sh")
        .args(["-c", &watchdog])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("watchdog: {e}"))
}

/// Copies a folder tree (fixtures into temp dirs).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("copy fixture");
    for entry in std::fs::read_dir(from).expect("copy fixture").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy fixture");
        }
    }
}

pub struct TestServer {
    pub url: String,
    /// Sends a global admin key on every request.
    pub client: reqwest::Client,
    pub admin_key: String,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ServerError>>>,
}

impl TestServer {
    pub async fn start(config: ServerConfig) -> Self {
        Self::start_with(config, ServeOptions::default()).await
    }

    pub async fn start_with(config: ServerConfig, options: ServeOptions) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let admin_key = admin_key(&config).await;
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(serve(config, listener, options, async {
            let _ = rx.await;
        }));
        let client = client_with_key(&admin_key);
        // The server answers as soon as the store is open.
        for _ in 0..200 {
            if client.get(format!("{url}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Self {
            url,
            client,
            admin_key,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Graceful stop; returns once the server has flushed (or not, per its options) and exited.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server result");
        }
    }

    pub async fn write(
        &self,
        tenant: &str,
        table: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        self.write_with(tenant, table, content_type, "", body).await
    }

    pub async fn write_with(
        &self,
        tenant: &str,
        table: &str,
        content_type: &str,
        query: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let resp = self
            .client
            .post(format!(
                "{}/api/v1/tenants/{tenant}/write/{table}{query}",
                self.url
            ))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("write request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Runs SQL and returns (status, raw body).
    pub async fn query_raw(&self, tenant: &str, sql: &str, format: &str) -> (u16, Vec<u8>) {
        let resp = self
            .client
            .post(format!(
                "{}/api/v1/tenants/{tenant}/query?format={format}",
                self.url
            ))
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .expect("query request");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.expect("body").to_vec())
    }

    /// Runs SQL and returns (status, JSON body).
    pub async fn query(&self, tenant: &str, sql: &str) -> (u16, Value) {
        let (status, body) = self.query_raw(tenant, sql, "json").await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Runs SQL that must succeed and returns its rows.
    pub async fn rows(&self, tenant: &str, sql: &str) -> Vec<Value> {
        let (status, body) = self.query(tenant, sql).await;
        assert_eq!(status, 200, "{sql}: {body}");
        body.as_array().cloned().unwrap_or_default()
    }

    pub async fn count(&self, tenant: &str, table: &str) -> i64 {
        let rows = self
            .rows(tenant, &format!("SELECT count(*) AS n FROM {table}"))
            .await;
        rows[0]["n"].as_i64().expect("count")
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("get");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}
