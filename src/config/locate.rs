//! Where a key sits in a YAML file. serde reports a position only for the first error it
//! meets; the validation pass that follows needs one for every problem it finds (a panel id in a
//! dashboard, a column name, a threshold). [`Locator`] scans block-style YAML once and maps key
//! paths such as `dashboard.panels[2].position.col` to `line:column`. Flow collections and
//! anything it cannot follow fall back to the nearest enclosing key it did find.

use std::collections::HashMap;

/// One step of a path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    Key(String),
    Index(usize),
}

impl From<&str> for Step {
    fn from(key: &str) -> Self {
        Step::Key(key.to_string())
    }
}

impl From<usize> for Step {
    fn from(i: usize) -> Self {
        Step::Index(i)
    }
}

/// Builds a path from keys and indexes: `path!["dashboard", "panels", 2, "id"]`.
#[macro_export]
macro_rules! yaml_path {
    ($($step:expr),* $(,)?) => {
        [$($crate::config::Step::from($step)),*]
    };
}

/// 1-based line and column of every key (and sequence item) in one YAML document.
#[derive(Debug, Default, Clone)]
pub struct Locator {
    positions: HashMap<Vec<Step>, (usize, usize)>,
}

struct Open {
    indent: usize,
    path: Vec<Step>,
    /// Set for a sequence item: its index, so the next `-` at the same indent continues it.
    item: Option<usize>,
}

impl Locator {
    pub fn new(text: &str) -> Self {
        let mut positions = HashMap::new();
        let mut stack: Vec<Open> = vec![];
        // Inside a block scalar (`key: |`), lines indented deeper than the key are text.
        let mut block_scalar_indent: Option<usize> = None;
        for (number, raw) in text.lines().enumerate() {
            let line = number + 1;
            let trimmed = raw.trim_start_matches(' ');
            let mut indent = raw.len() - trimmed.len();
            if let Some(block) = block_scalar_indent {
                if trimmed.trim().is_empty() || indent > block {
                    continue;
                }
                block_scalar_indent = None;
            }
            let mut rest = trimmed.trim_end();
            if rest.is_empty() || rest.starts_with('#') || rest == "---" || rest == "..." {
                continue;
            }
            // Sequence items, possibly several on one line (`- - a`).
            while rest == "-" || rest.starts_with("- ") {
                while stack.last().is_some_and(|o| o.indent > indent) {
                    stack.pop();
                }
                let (parent, index) = match stack.last() {
                    Some(o) if o.indent == indent && o.item.is_some() => {
                        let next = o.item.map_or(0, |i| i + 1);
                        let parent = o.path[..o.path.len() - 1].to_vec();
                        stack.pop();
                        (parent, next)
                    }
                    Some(o) => (o.path.clone(), 0),
                    None => (vec![], 0),
                };
                let mut path = parent;
                path.push(Step::Index(index));
                positions.entry(path.clone()).or_insert((line, indent + 1));
                stack.push(Open {
                    indent,
                    path,
                    item: Some(index),
                });
                let after = rest[1..].trim_start_matches(' ');
                indent += rest.len() - after.len();
                rest = after;
            }
            let Some((key, value)) = split_key(rest) else {
                continue;
            };
            // A key closes everything opened at its indent or deeper, including an
            // indentless sequence (`key:` then `- item` at the same indent) that preceded it.
            while stack.last().is_some_and(|o| o.indent >= indent) {
                stack.pop();
            }
            let mut path = stack.last().map(|o| o.path.clone()).unwrap_or_default();
            path.push(Step::Key(key));
            positions.entry(path.clone()).or_insert((line, indent + 1));
            let value = strip_comment(value);
            if value.starts_with('|') || value.starts_with('>') {
                block_scalar_indent = Some(indent);
            }
            stack.push(Open {
                indent,
                path,
                item: None,
            });
        }
        Self { positions }
    }

    /// Position of `path`, or of its nearest ancestor that was found, or 1:1.
    pub fn locate(&self, path: &[Step]) -> (usize, usize) {
        (0..=path.len())
            .rev()
            .find_map(|n| self.positions.get(&path[..n]).copied())
            .unwrap_or((1, 1))
    }

    /// True when `path` itself (not an ancestor) was found.
    pub fn contains(&self, path: &[Step]) -> bool {
        self.positions.contains_key(path)
    }
}

/// `key: value` → (key, value); quotes around the key are dropped.
fn split_key(line: &str) -> Option<(String, &str)> {
    let (key, value) = if let Some(quoted) = line.strip_prefix('"') {
        let end = quoted.find('"')?;
        (&quoted[..end], quoted[end + 1..].strip_prefix(':')?)
    } else if let Some(quoted) = line.strip_prefix('\'') {
        let end = quoted.find('\'')?;
        (&quoted[..end], quoted[end + 1..].strip_prefix(':')?)
    } else {
        if line.starts_with(['[', '{', '#', '&', '*', '!', '|', '>']) {
            return None;
        }
        let colon = line
            .char_indices()
            .find(|&(i, c)| {
                c == ':' && (line[i + 1..].is_empty() || line[i + 1..].starts_with(' '))
            })
            .map(|(i, _)| i)?;
        (&line[..colon], &line[colon + 1..])
    };
    if !value.is_empty() && !value.starts_with(' ') {
        return None;
    }
    Some((key.trim().to_string(), value.trim()))
}

fn strip_comment(value: &str) -> &str {
    match value.find(" #") {
        Some(i) => value[..i].trim_end(),
        None if value.starts_with('#') => "",
        None => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DASHBOARD: &str = r#"dashboard:
  name: "Main"
  layout:
    columns: 12
  panels:
    - id: "cpu_usage"
      position:
        row: 1
        col: 1
    - id: memory
      position: {row: 1, col: 9}
  notes: |
    - id: not-a-key
    col: 5
  after: 1
"#;

    #[test]
    fn finds_keys_and_items() {
        let l = Locator::new(DASHBOARD);
        assert_eq!(l.locate(&yaml_path!["dashboard"]), (1, 1));
        assert_eq!(
            l.locate(&yaml_path!["dashboard", "layout", "columns"]),
            (4, 5)
        );
        assert_eq!(l.locate(&yaml_path!["dashboard", "panels", 0]), (6, 5));
        assert_eq!(
            l.locate(&yaml_path!["dashboard", "panels", 0, "id"]),
            (6, 7)
        );
        assert_eq!(
            l.locate(&yaml_path!["dashboard", "panels", 0, "position", "col"]),
            (9, 9)
        );
        assert_eq!(
            l.locate(&yaml_path!["dashboard", "panels", 1, "id"]),
            (10, 7)
        );
        // Flow mappings fall back to their key.
        assert_eq!(
            l.locate(&yaml_path!["dashboard", "panels", 1, "position", "col"]),
            (11, 7)
        );
        assert_eq!(l.locate(&yaml_path!["dashboard", "after"]), (15, 3));
        assert!(!l.contains(&yaml_path!["dashboard", "notes", 0]));
        assert_eq!(l.locate(&yaml_path!["nothing"]), (1, 1));
    }

    #[test]
    fn indentless_sequences_and_quoted_keys() {
        let text = "panel:\n  columns:\n  - name: a\n  - name: b\n    display: B\n  \"0\":\n    color: red\n";
        let l = Locator::new(text);
        assert_eq!(
            l.locate(&yaml_path!["panel", "columns", 1, "display"]),
            (5, 5)
        );
        assert_eq!(l.locate(&yaml_path!["panel", "0", "color"]), (7, 5));
    }
}
