//! Shared by the benches: a client that can call a bench's own server.

use opsboard::config::ServerConfig;

/// A client carrying an operator key for the bench's server (every route needs one).
pub async fn keyed_client(config: &ServerConfig) -> reqwest::Client {
    let key = opsboard::auth::operator_key(config, "bench")
        .await
        .expect("bench key");
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {key}").parse().expect("header");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}
