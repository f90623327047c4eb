//! What a rule says about one of its alerts: its message, annotations (templates rendered over
//! the alert's row) and the labels it goes out with — the same for threshold and event rules.

use std::collections::BTreeMap;

use serde_json::Value;

use super::state::Labels;
use crate::config::AlertRule;

/// A rule's `message` rendered over `context` (plus `rule`); `fallback` without one. A
/// template that fails says where it is written instead.
pub fn rule_message(
    rule: &AlertRule,
    mut context: serde_json::Map<String, Value>,
    fallback: impl FnOnce() -> String,
) -> String {
    let Some(template) = &rule.config.message else {
        return fallback();
    };
    context.insert("rule".into(), Value::String(rule.config.name.clone()));
    match crate::render::render_template(template, &Value::Object(context)) {
        Ok(text) => text,
        Err((line, e)) => {
            let at = line.map_or(rule.message_line, |l| rule.message_line + l - 1);
            format!("message template error at {}: line {at}: {e}", rule.origin)
        }
    }
}

/// The rule's annotations rendered over `context`; a template that fails says why instead.
pub fn rule_annotations(rule: &AlertRule, context: &Value) -> BTreeMap<String, String> {
    (rule.config.annotations.iter())
        .map(|(k, t)| {
            let text = crate::render::render_template(t, context).unwrap_or_else(|(_, e)| e);
            (k.clone(), text)
        })
        .collect()
}

/// The alert's labels as sent: its own, the rule's, `alertname` and `severity`.
pub fn sent_labels(rule: &AlertRule, own: &Labels) -> Labels {
    let mut labels = own.clone();
    labels.extend(rule.config.labels.clone());
    labels.insert("alertname".into(), rule.config.name.clone());
    labels.insert("severity".into(), rule.config.severity.as_str().into());
    labels
}
