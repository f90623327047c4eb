//! `variables:` of a dashboard: named values a viewer picks (`?var-vm=vm-2`, Grafana's URL
//! convention; a multi variable repeats the parameter) that its panels read as `$vm` — always as
//! bound parameters, never spliced into SQL. Options come from a fixed `values:` list or from a
//! `query:` (its first column).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::locate::Step;
use super::problem::Report;

/// Names the engine binds itself; a variable cannot take them.
pub const RESERVED: [&str; 4] = ["from", "to", "bucket", "origin"];

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    pub name: String,
    #[serde(default)]
    pub label: Option<String>,
    /// Read-only SQL whose first column lists the options.
    #[serde(default)]
    pub query: Option<String>,
    /// A fixed list of options.
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// The value(s) when the URL gives none; else the first option.
    #[serde(default)]
    pub default: Option<Defaults>,
    /// Several values at once (bound as a list: use it as `IN ($name)`).
    #[serde(default)]
    pub multi: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Defaults {
    One(String),
    Many(Vec<String>),
}

impl Variable {
    /// What the selector is labelled with: `label`, else the name.
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }

    pub fn defaults(&self) -> Vec<String> {
        match &self.default {
            None => vec![],
            Some(Defaults::One(v)) => vec![v.clone()],
            Some(Defaults::Many(v)) => v.clone(),
        }
    }
}

/// Whether `text` reads `$name` (not as the start of a longer name).
pub fn mentions(text: &str, name: &str) -> bool {
    let needle = format!("${name}");
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        let after = &rest[at + needle.len()..];
        if !after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return true;
        }
        rest = after;
    }
    false
}

/// Checks what can be checked without the tenant's tables (the query is planned with them in
/// `check`): names, options, defaults, repeats.
pub fn check_variables(variables: &[Variable], r: &mut Report<'_>) {
    let mut names = BTreeSet::new();
    for (i, v) in variables.iter().enumerate() {
        let at = |key: &str| -> Vec<Step> {
            vec!["dashboard".into(), "variables".into(), i.into(), key.into()]
        };
        let identifier = v
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && v.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier {
            r.at(
                &at("name"),
                format!(
                    "variable name `{}` must be letters, digits and _ (not starting with a digit)",
                    v.name
                ),
            );
        } else if RESERVED.contains(&v.name.as_str()) {
            r.at(
                &at("name"),
                format!(
                    "`{}` is bound by the engine itself; choose another variable name",
                    v.name
                ),
            );
        } else if !names.insert(v.name.as_str()) {
            r.at(
                &at("name"),
                format!("variable `{}` is declared twice", v.name),
            );
        }
        match (&v.query, &v.values) {
            (Some(_), Some(_)) => r.at(
                &at("values"),
                format!("variable `{}`: give `query` or `values`, not both", v.name),
            ),
            (None, None) => r.at(
                &at("name"),
                format!("variable `{}` needs `query` or `values`", v.name),
            ),
            (None, Some(values)) if values.is_empty() => r.at(
                &at("values"),
                format!("variable `{}`: `values` is empty", v.name),
            ),
            _ => {}
        }
        let defaults = v.defaults();
        if !v.multi && defaults.len() > 1 {
            r.at(
                &at("default"),
                format!(
                    "variable `{}` takes one value (add `multi: true` for several)",
                    v.name
                ),
            );
        }
        if let Some(values) = &v.values
            && let Some(bad) = defaults.iter().find(|d| !values.contains(d))
        {
            r.at(
                &at("default"),
                format!(
                    "variable `{}`: default `{bad}` is not one of its values",
                    v.name
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_whole_names_only() {
        assert!(mentions("vm = $vm", "vm"));
        assert!(mentions("IN ($region) AND x", "region"));
        assert!(!mentions("vm = $vm_name", "vm"));
        assert!(mentions("$vm_name = 1 OR $vm", "vm"));
        assert!(!mentions("no variables", "vm"));
    }
}
