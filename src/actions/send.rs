//! One run's call: headers from the server's environment, the target checked against internal
//! addresses, each attempt bounded by the action's timeout, and another attempt — up to its
//! `retries` — only when a later one could succeed (no answer, 408, 429, 5xx).

use std::time::Duration;

use crate::alerts::{check_target, redacted};
use crate::config::{IpNetwork, PanelAction, env_references};

/// What was rendered for one run.
pub struct Call {
    pub url: String,
    pub body: Option<String>,
}

/// How the call ended.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub attempts: u32,
    pub http_status: Option<u16>,
    /// None: a 2xx answer.
    pub error: Option<String>,
}

/// Pause before attempt `n + 1` (n ≥ 1): 0.5 s, 1 s, 2 s, capped at 5 s.
fn backoff(n: u32) -> Duration {
    Duration::from_millis((500u64 << (n - 1).min(4)).min(5_000))
}

/// The action's headers with `${NAME}` read from the environment now.
fn headers(action: &PanelAction) -> Result<Vec<(String, String)>, String> {
    let mut out = vec![];
    for (name, value) in &action.headers {
        let mut text = value.clone();
        for reference in env_references(value).map_err(|e| format!("header `{name}`: {e}"))? {
            let found = std::env::var(reference).map_err(|_| {
                format!(
                    "header `{name}`: environment variable {reference} is not set on the server"
                )
            })?;
            text = text.replace(&format!("${{{reference}}}"), &found);
        }
        out.push((name.clone(), text));
    }
    Ok(out)
}

pub async fn deliver(
    http: &reqwest::Client,
    allowed_targets: &[IpNetwork],
    action: &PanelAction,
    call: &Call,
) -> Outcome {
    let mut outcome = Outcome::default();
    let headers = match headers(action) {
        Ok(h) => h,
        Err(e) => {
            outcome.error = Some(e);
            return outcome;
        }
    };
    if let Err(e) = check_target(&call.url, allowed_targets).await {
        outcome.error = Some(e.to_string());
        return outcome;
    }
    let method = reqwest::Method::from_bytes(action.method.as_str().as_bytes())
        .unwrap_or(reqwest::Method::POST);
    loop {
        outcome.attempts += 1;
        let mut request = http
            .request(method.clone(), &call.url)
            .timeout(action.timeout());
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &call.body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, action.content_type.as_str())
                .body(body.clone());
        }
        let again = match request.send().await {
            Ok(response) => {
                let status = response.status();
                outcome.http_status = Some(status.as_u16());
                if status.is_success() {
                    outcome.error = None;
                    return outcome;
                }
                outcome.error = Some(format!(
                    "{} answered {}",
                    redacted(&call.url),
                    status.as_u16()
                ));
                status.is_server_error() || matches!(status.as_u16(), 408 | 429)
            }
            Err(e) => {
                outcome.http_status = None;
                let what = if e.is_timeout() {
                    format!("no answer within {}s", action.timeout().as_secs_f64())
                } else {
                    with_causes(&e.without_url())
                };
                outcome.error = Some(format!("{}: {what}", redacted(&call.url)));
                true
            }
        };
        if !again || outcome.attempts > action.retries {
            return outcome;
        }
        tokio::time::sleep(backoff(outcome.attempts)).await;
    }
}

/// An error and what caused it (`error sending request: connection refused`).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stops_at_five_seconds() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(5), Duration::from_secs(5));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }

    #[test]
    fn a_missing_environment_variable_names_itself_not_a_value() {
        let action: PanelAction = serde_yaml::from_str(
            "{id: a, label: A, url: 'http://x/', headers: {X-Token: 'Bearer ${OPSBOARD_TEST_SURELY_UNSET}'}}",
        )
        .unwrap();
        let err = headers(&action).unwrap_err();
        assert!(
            err.contains("OPSBOARD_TEST_SURELY_UNSET is not set"),
            "{err}"
        );
    }
}
