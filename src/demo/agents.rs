//! The demo's agents: a small HTTP server on a loopback port of its own that the seed
//! tenants' actions call (`${OPSBOARD_DEMO_AGENTS}/{tenant}/{unit}/{command}`), standing in for
//! the agents on real devices and VMs. A command it accepts takes the simulated unit away for
//! a while; the live writer shows it offline and back.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use tokio_util::sync::CancellationToken;

use super::seeds::Seeds;

/// The name actions use for the agents' base URL.
pub const VARIABLE: &str = "OPSBOARD_DEMO_AGENTS";

/// Starts the agents on `127.0.0.1:0`; returns their base URL. They stop with `cancel`.
pub async fn start(seeds: Arc<Seeds>, cancel: CancellationToken) -> std::io::Result<String> {
    let app = axum::Router::new()
        .route("/{tenant}/{unit}/{command}", axum::routing::post(obey))
        .with_state(seeds);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let stopped = async move { cancel.cancelled().await };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(error = %e, "demo agents stopped");
        }
    });
    Ok(url)
}

async fn obey(
    State(seeds): State<Arc<Seeds>>,
    Path((tenant, unit, command)): Path<(String, String, String)>,
) -> (StatusCode, String) {
    match seeds.command(&tenant, &unit, &command) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            format!("{command} of {unit} under way\n"),
        ),
        Err(e) if e.starts_with("no unit") => (StatusCode::NOT_FOUND, e),
        Err(e) if e.contains("not answering") => (StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e) => (StatusCode::BAD_REQUEST, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_restart_is_accepted_once_and_unknown_units_are_not_found() {
        let seeds = Arc::new(Seeds::default());
        let cancel = CancellationToken::new();
        let url = start(seeds.clone(), cancel.clone()).await.unwrap();
        let client = reqwest::Client::new();
        let post = |path: &str| client.post(format!("{url}{path}")).send();
        assert_eq!(post("/kraliki/vm-01/restart").await.unwrap().status(), 202);
        assert_eq!(
            post("/kraliki/vm-01/restart").await.unwrap().status(),
            503,
            "still away"
        );
        assert_eq!(post("/kraliki/vm-99/restart").await.unwrap().status(), 404);
        assert_eq!(
            post("/kraliki/vm-02/screenshot").await.unwrap().status(),
            400
        );
        assert_eq!(
            post("/pimeet/room-01/screenshot").await.unwrap().status(),
            202
        );
        assert_eq!(post("/nope/x/restart").await.unwrap().status(), 400);
        cancel.cancel();
    }
}
