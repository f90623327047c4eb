//! Receivers for alert notifications: a webhook on port 0 and an SMTP sink (Python's aiosmtpd).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;

pub struct Hook {
    pub url: String,
    pub bodies: Arc<Mutex<Vec<Value>>>,
}

/// A webhook receiver on port 0 that answers 500 to its first `fail_first` calls.
pub async fn webhook(fail_first: usize) -> Hook {
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let failures = Arc::new(AtomicUsize::new(fail_first));
    let (b, f) = (bodies.clone(), failures.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let (b, f) = (b.clone(), f.clone());
            async move {
                if f.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                b.lock().push(body);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Hook { url, bodies }
}

/// `python3 -m aiosmtpd` storing mail in a Maildir; None when aiosmtpd is not installed.
pub struct SmtpSink {
    child: std::process::Child,
    pub address: String,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpSink {
    pub fn start() -> Option<Self> {
        let installed = std::process::Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            if std::env::var("OPSBOARD_SMTP").as_deref() == Ok("required") {
                panic!("aiosmtpd required (pip install aiosmtpd)");
            }
            eprintln!("SKIPPED the email part: no aiosmtpd (pip install aiosmtpd)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("mail");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &address,
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(&address).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self {
            child,
            address,
            maildir,
            _dir: dir,
        })
    }

    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.maildir.join("new"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }
}

/// `(rule, state)` of each rule in nodata or error, from the alerts summary of
/// `GET /api/v1/tenants/{t}/alerts`.
pub fn problems(summary: &Value) -> Vec<(String, String)> {
    summary["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["rule"].as_str().unwrap_or_default().to_string(),
                p["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}
