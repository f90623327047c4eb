//! A local receiver for panel actions on port 0: records every call (method, path as sent,
//! the `X-Token` header, body) and answers by path — `/hosts/…` 200, `/flaky/…` 500 twice
//! then 200, `/slow/…` after 3 s, `/hold/…` after 1.5 s, anything else 404.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use parking_lot::Mutex;

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub token: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

pub struct Receiver {
    pub url: String,
    pub calls: Arc<Mutex<Vec<Call>>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let flaky = Arc::new(AtomicUsize::new(2));
        let (c, f) = (calls.clone(), flaky.clone());
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (c, f) = (c.clone(), f.clone());
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    let path = uri.path().to_string();
                    c.lock().push(Call {
                        method: method.to_string(),
                        path: path.clone(),
                        token: header("x-token"),
                        content_type: header("content-type"),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    if path.starts_with("/slow/") {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                    if path.starts_with("/hold/") {
                        tokio::time::sleep(Duration::from_millis(1500)).await;
                    }
                    if path.starts_with("/flaky/") {
                        let failing = f
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                        if failing {
                            return StatusCode::INTERNAL_SERVER_ERROR;
                        }
                    }
                    if ["/hosts/", "/flaky/", "/slow/", "/hold/", "/panel/"]
                        .iter()
                        .any(|p| path.starts_with(p))
                    {
                        StatusCode::OK
                    } else {
                        StatusCode::NOT_FOUND
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, calls }
    }

    pub fn count(&self) -> usize {
        self.calls.lock().len()
    }

    pub fn last(&self) -> Call {
        self.calls.lock().last().cloned().expect("a call")
    }
}
