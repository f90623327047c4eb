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

/// Values for `${NAME}` the server itself provides (the demo's agents); the process
/// environment is read for the others.
pub type ServerVariables = std::collections::BTreeMap<String, String>;

/// `text` with each `${NAME}` replaced, read now; `place` names it in errors.
pub fn substitute(text: &str, place: &str, variables: &ServerVariables) -> Result<String, String> {
    let mut out = text.to_string();
    for reference in env_references(text).map_err(|e| format!("{place}: {e}"))? {
        let found = match variables.get(reference) {
            Some(value) => value.clone(),
            None => std::env::var(reference).map_err(|_| {
                format!("{place}: environment variable {reference} is not set on the server")
            })?,
        };
        out = out.replace(&format!("${{{reference}}}"), &found);
    }
    Ok(out)
}

/// The action's headers with `${NAME}` read now.
fn headers(
    action: &PanelAction,
    variables: &ServerVariables,
) -> Result<Vec<(String, String)>, String> {
    action
        .headers
        .iter()
        .map(|(name, value)| {
            Ok((
                name.clone(),
                substitute(value, &format!("header `{name}`"), variables)?,
            ))
        })
        .collect()
}

pub async fn deliver(
    http: &reqwest::Client,
    allowed_targets: &[IpNetwork],
    variables: &ServerVariables,
    action: &PanelAction,
    call: &Call,
) -> Outcome {
    let mut outcome = Outcome::default();
    let (headers, url) = match headers(action, variables)
        .and_then(|h| Ok((h, substitute(&call.url, "url", variables)?)))
    {
        Ok(found) => found,
        Err(e) => {
            outcome.error = Some(e);
            return outcome;
        }
    };
    if let Err(e) = check_target(&url, allowed_targets).await {
        outcome.error = Some(e.to_string());
        return outcome;
    }
    let method = reqwest::Method::from_bytes(action.method.as_str().as_bytes())
        .unwrap_or(reqwest::Method::POST);
    loop {
        outcome.attempts += 1;
        let mut request = http.request(method.clone(), &url).timeout(action.timeout());
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
                outcome.error = Some(format!("{} answered {}", redacted(&url), status.as_u16()));
                status.is_server_error() || matches!(status.as_u16(), 408 | 429)
            }
            Err(e) => {
                outcome.http_status = None;
                let what = if e.is_timeout() {
                    format!("no answer within {}s", action.timeout().as_secs_f64())
                } else {
                    with_causes(&e.without_url())
                };
                outcome.error = Some(format!("{}: {what}", redacted(&url)));
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
    fn server_variables_come_before_the_environment() {
        let mut variables = ServerVariables::new();
        variables.insert("OPSBOARD_TEST_AGENTS".into(), "http://127.0.0.1:9".into());
        let url = substitute("${OPSBOARD_TEST_AGENTS}/vms/a%24%7BX%7D", "url", &variables).unwrap();
        assert_eq!(url, "http://127.0.0.1:9/vms/a%24%7BX%7D");
        assert!(substitute("${OPSBOARD_TEST_SURELY_UNSET}/x", "url", &variables).is_err());
    }

    #[test]
    fn a_missing_environment_variable_names_itself_not_a_value() {
        let action: PanelAction = serde_yaml::from_str(
            "{id: a, label: A, url: 'http://x/', headers: {X-Token: 'Bearer ${OPSBOARD_TEST_SURELY_UNSET}'}}",
        )
        .unwrap();
        let err = headers(&action, &ServerVariables::new()).unwrap_err();
        assert!(
            err.contains("OPSBOARD_TEST_SURELY_UNSET is not set"),
            "{err}"
        );
    }
}
