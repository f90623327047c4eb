//! The agents' protocols over HTTP against a real server, with the agents' own clients where
//! they exist: InfluxDB line protocol (`influx`) and Prometheus remote write (`prometheus`).
//! Bad input is refused with nothing written.

#[path = "../common/mod.rs"]
mod common;

mod influx;
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
