//! `actions:` on a panel: buttons that call out — per row of a table, per panel otherwise. An
//! action is a webhook (method, URL, body and confirmation as templates over the row the panel
//! shows, headers from the server's environment) that editors — or only admins — may run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::HumanDuration;

/// Default time one attempt may take.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;
/// Most attempts after the first a run may make (a restart is not idempotent: the default is 0).
pub const MAX_RETRIES: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PanelAction {
    /// In the API's path (`/actions/{id}`) and the `actions` table; unique within the panel.
    pub id: String,
    pub label: String,
    #[serde(rename = "type", default)]
    pub kind: ActionType,
    /// A template; values are URL-escaped.
    pub url: String,
    #[serde(default)]
    pub method: ActionMethod,
    /// A template; values are JSON-escaped while `content_type` is JSON. Absent: a JSON
    /// object with the tenant, panel, action, run, user and the row.
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default = "json_type")]
    pub content_type: String,
    /// Values may name the server's environment as `${NAME}`; never shown to users.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Asked before the run (a template; HTML-escaped on the page).
    #[serde(default)]
    pub confirm: Option<String>,
    #[serde(default)]
    pub role: ActionRole,
    /// The columns that pick the row; default: the `row.<column>`s the URL reads (else those
    /// the other templates read).
    #[serde(default)]
    pub key: Option<Vec<String>>,
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Attempts after a failed one (connection error, timeout, 5xx, 429), 0 to `MAX_RETRIES`.
    #[serde(default)]
    pub retries: u32,
}

fn json_type() -> String {
    "application/json".into()
}

impl PanelAction {
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
            .map(|t| t.0)
            .unwrap_or(std::time::Duration::from_secs(DEFAULT_TIMEOUT_SECS))
    }

    /// Whether the body is JSON (its values JSON-escaped, the result checked).
    pub fn is_json(&self) -> bool {
        let essence = self.content_type.split(';').next().unwrap_or("").trim();
        essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")
    }

    /// Every template with the name its escaping goes by (`.url`, `.json`, `.txt`); the page
    /// escapes a confirmation where it shows it.
    pub fn templates(&self) -> Vec<(&'static str, &str)> {
        let body_kind = if self.is_json() {
            "body.json"
        } else {
            "body.txt"
        };
        let mut all = vec![("url.url", self.url.as_str())];
        all.extend(self.body.as_deref().map(|b| (body_kind, b)));
        all.extend(self.confirm.as_deref().map(|c| ("confirm.txt", c)));
        all
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionType {
    #[default]
    Webhook,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ActionMethod {
    #[default]
    Post,
    Put,
    Patch,
    Delete,
    Get,
}

impl ActionMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Get => "GET",
        }
    }
}

/// Who may run an action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionRole {
    #[default]
    Editor,
    Admin,
}

/// `${NAME}` references in a header value, in order.
pub fn env_references(value: &str) -> Result<Vec<&str>, String> {
    let mut names = vec![];
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`${{` without its `}}` in {value:?}"))?;
        let name = &after[..end];
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("`${{{name}}}` is not an environment variable name"));
        }
        names.push(name);
        rest = &after[end + 1..];
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_example_reads_with_its_defaults() {
        let yaml = r#"
id: restart
label: Restart
url: "https://agent.example/vms/{{ row.vm }}/restart"
body: '{"vm": {{ row.vm | tojson }}, "by": {{ user | tojson }}}'
headers: {X-Token: "${KRALIKI_TOKEN}"}
confirm: "Restart {{ row.vm }}?"
role: editor
"#;
        let action: PanelAction = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(action.kind, ActionType::Webhook);
        assert_eq!(action.method, ActionMethod::Post);
        assert!(action.is_json());
        assert_eq!(action.retries, 0);
        assert_eq!(action.timeout().as_secs(), DEFAULT_TIMEOUT_SECS);
        assert_eq!(action.templates().len(), 3);
        assert!(
            serde_yaml::from_str::<PanelAction>("{id: a, label: A, url: x, rol: admin}").is_err()
        );
    }

    #[test]
    fn environment_references_are_names_or_errors() {
        assert_eq!(env_references("Bearer ${A_1}").unwrap(), vec!["A_1"]);
        assert_eq!(env_references("${A}:${B}").unwrap(), vec!["A", "B"]);
        assert!(env_references("plain").unwrap().is_empty());
        assert!(env_references("${A").is_err());
        assert!(env_references("${1A}").is_err());
        assert!(env_references("${a b}").is_err());
    }
}
