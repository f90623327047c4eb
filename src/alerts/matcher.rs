//! Label matchers of silences, as Alertmanager writes them: `name=value`, `name!=value`,
//! `name=~regex`, `name!~regex`, comma-separated, values optionally double-quoted (needed for a
//! regex holding a comma). Regexes are anchored at both ends; a missing label reads as "", so
//! `team!=ops` holds for an alert with no `team` label.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::state::Labels;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchOp {
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    #[serde(rename = "=~")]
    Regex,
    #[serde(rename = "!~")]
    NotRegex,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

impl Matcher {
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, String> {
        if !is_label_name(name) {
            return Err(format!(
                "`{name}` is not a label name (letters, digits and _, not starting with a digit)"
            ));
        }
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                let compile = |pattern: &str| {
                    regex::RegexBuilder::new(pattern)
                        .size_limit(1 << 20)
                        .build()
                };
                // The user's own pattern first, so an error points into what they wrote.
                let anchored = compile(value)
                    .and_then(|_| compile(&format!("^(?:{value})$")))
                    .map_err(|e| format!("`{name}{}{value}`: {e}", op.as_str()))?;
                Some(anchored)
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Self {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// Whether the label's value (`None`: the alert has no such label) satisfies the matcher.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let value = value.unwrap_or("");
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, self.op, &self.value) == (&other.name, other.op, &other.value)
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = !self.value.is_empty()
            && !self
                .value
                .contains(|c: char| c == ',' || c == '"' || c.is_whitespace());
        if plain {
            write!(f, "{}{}{}", self.name, self.op.as_str(), self.value)
        } else {
            let quoted = self.value.replace('\\', "\\\\").replace('"', "\\\"");
            write!(f, "{}{}\"{quoted}\"", self.name, self.op.as_str())
        }
    }
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// All of a silence's matchers; an alert is covered when every one holds. `alertname` is the
/// rule's name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    pub fn covers(&self, rule: &str, labels: &Labels) -> bool {
        self.0.iter().all(|m| {
            let value = match m.name.as_str() {
                "alertname" => Some(rule),
                name => labels.get(name).map(String::as_str),
            };
            m.matches(value)
        })
    }

    /// Parses `alertname=disk_high, host=~"web-(1|2)", team!=ops`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let body = text.trim();
        let body = body
            .strip_prefix('{')
            .and_then(|b| b.strip_suffix('}'))
            .unwrap_or(body);
        let mut rest = body;
        let mut out = vec![];
        while !rest.trim().is_empty() {
            rest = rest.trim_start();
            let at = body.len() - rest.len() + 1;
            let (matcher, after) =
                parse_one(rest).map_err(|e| format!("matcher at character {at}: {e}"))?;
            out.push(matcher);
            rest = after.trim_start();
            rest = match rest.strip_prefix(',') {
                Some(r) => r,
                None if rest.is_empty() => rest,
                None => {
                    return Err(format!(
                        "expected `,` between matchers, found `{}`",
                        rest.chars().take(10).collect::<String>()
                    ));
                }
            };
        }
        Self::new(out)
    }

    /// As Alertmanager: some matcher must need a label to have a value, so that a silence
    /// cannot cover every alert by accident (`team!=dev` alone would).
    pub fn new(matchers: Vec<Matcher>) -> Result<Self, String> {
        if matchers.is_empty() {
            return Err("at least one matcher is needed, e.g. alertname=disk_high".into());
        }
        if matchers.iter().all(|m| m.matches(None)) {
            return Err(
                "every matcher also matches alerts without that label; add one that needs a value, e.g. alertname=disk_high"
                    .into(),
            );
        }
        Ok(Self(matchers))
    }
}

fn parse_one(text: &str) -> Result<(Matcher, &str), String> {
    let text = text.trim_start();
    let name_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let (name, rest) = text.split_at(name_end);
    let rest = rest.trim_start();
    let (op, rest) = [
        ("=~", MatchOp::Regex),
        ("!~", MatchOp::NotRegex),
        ("!=", MatchOp::NotEqual),
        ("=", MatchOp::Equal),
    ]
    .into_iter()
    .find_map(|(sym, op)| rest.strip_prefix(sym).map(|r| (op, r)))
    .ok_or_else(|| {
        format!("expected label=value, label!=value, label=~regex or label!~regex after `{name}`")
    })?;
    let rest = rest.trim_start();
    let (value, rest) = if let Some(quoted) = rest.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        loop {
            match chars.next() {
                Some((i, '"')) => break (value, &quoted[i + 1..]),
                Some((_, '\\')) => match chars.next() {
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated quoted value".into()),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated quoted value".into()),
            }
        }
    } else {
        let end = rest.find(',').unwrap_or(rest.len());
        (rest[..end].trim_end().to_string(), &rest[end..])
    };
    Ok((Matcher::new(name, op, &value)?, rest))
}

impl fmt::Display for Matchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct MatcherFields {
    name: String,
    #[serde(default = "equal")]
    op: MatchOp,
    value: String,
    /// Alertmanager's API spelling of the operator.
    #[serde(default, rename = "isRegex", skip_serializing)]
    is_regex: bool,
    #[serde(default = "yes", rename = "isEqual", skip_serializing)]
    is_equal: bool,
}

fn equal() -> MatchOp {
    MatchOp::Equal
}

fn yes() -> bool {
    true
}

impl Serialize for Matchers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fields: Vec<MatcherFields> = self
            .0
            .iter()
            .map(|m| MatcherFields {
                name: m.name.clone(),
                op: m.op,
                value: m.value.clone(),
                is_regex: false,
                is_equal: true,
            })
            .collect();
        fields.serialize(s)
    }
}

/// Accepted as the text form, a `{label: value}` map (equality), or a list of
/// `{name, op, value}` / Alertmanager's `{name, value, isRegex, isEqual}`.
impl<'de> Deserialize<'de> for Matchers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Input {
            Text(String),
            Map(Labels),
            List(Vec<MatcherFields>),
        }
        let matchers = match Input::deserialize(d)? {
            Input::Text(text) => return Matchers::parse(&text).map_err(serde::de::Error::custom),
            Input::Map(map) => map
                .iter()
                .map(|(k, v)| Matcher::new(k, MatchOp::Equal, v))
                .collect::<Result<Vec<_>, _>>(),
            Input::List(list) => list
                .into_iter()
                .map(|f| {
                    let op = match (f.op, f.is_regex, f.is_equal) {
                        (MatchOp::Equal, true, true) => MatchOp::Regex,
                        (MatchOp::Equal, true, false) => MatchOp::NotRegex,
                        (MatchOp::Equal, false, false) => MatchOp::NotEqual,
                        (op, _, _) => op,
                    };
                    Matcher::new(&f.name, op, &f.value)
                })
                .collect(),
        }
        .map_err(serde::de::Error::custom)?;
        Matchers::new(matchers).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn operators_follow_alertmanager() {
        let alert = labels(&[("host", "web-12"), ("team", "ops")]);
        let covers = |text: &str| Matchers::parse(text).unwrap().covers("disk_high", &alert);
        assert!(covers("alertname=disk_high"));
        assert!(!covers("alertname=disk"));
        assert!(covers("alertname=disk_high, host=web-12"));
        assert!(covers("host=~web-1[0-9]"));
        assert!(!covers("host=~web-1"), "regexes are anchored");
        assert!(covers("alertname=disk_high, host!~db-.*, team!=dev"));
        assert!(!covers("alertname=disk_high, team!=ops"));
        assert!(
            covers("host=web-12, region!=eu"),
            "a missing label reads as empty"
        );
        assert!(!covers("region=~.+"));
        assert!(covers("host=~web.*, region=~\"\""));
        assert!(covers(
            r#"{alertname=~"disk_(high|critical)", host=~"web-(12|13),?"}"#
        ));
    }

    #[test]
    fn text_form_round_trips() {
        for text in [
            "alertname=disk_high",
            "alertname=disk_high, host!=web-1, team=~\"a,b\", x!~\"say \\\"hi\\\"\"",
            "alertname=x, a=\"\"",
        ] {
            let parsed = Matchers::parse(text).unwrap();
            assert_eq!(parsed.to_string(), text);
            assert_eq!(Matchers::parse(&parsed.to_string()).unwrap(), parsed);
        }
    }

    #[test]
    fn bad_matchers_say_where_and_why() {
        let err = |text: &str| Matchers::parse(text).unwrap_err();
        assert!(err("").contains("at least one matcher"));
        assert!(
            err("host").contains("expected label=value"),
            "{}",
            err("host")
        );
        assert!(
            err("a=b, host=~(").contains("character 6"),
            "{}",
            err("a=b, host=~(")
        );
        assert!(err("a=b, host=~(").contains("regex parse error"));
        assert!(err("9x=1").contains("not a label name"));
        assert!(err("a=\"open").contains("unterminated"));
        assert!(err("a=\"b\" c=d").contains("expected `,`"));
        assert!(err("team!=dev").contains("also matches alerts without that label"));
        assert!(err("a=~.*, b=\"\"").contains("also matches alerts without that label"));
    }

    #[test]
    fn json_forms_are_accepted_and_stored_as_a_list() {
        let from = |json: &str| serde_json::from_str::<Matchers>(json).unwrap();
        let map = from(r#"{"alertname": "disk_high", "host": "a"}"#);
        assert_eq!(map, Matchers::parse("alertname=disk_high, host=a").unwrap());
        let alertmanager = from(
            r#"[{"name": "host", "value": "web-.*", "isRegex": true, "isEqual": true},
                {"name": "team", "value": "ops", "isRegex": false, "isEqual": false}]"#,
        );
        assert_eq!(alertmanager.to_string(), "host=~web-.*, team!=ops");
        let stored = serde_json::to_string(&alertmanager).unwrap();
        assert_eq!(
            stored,
            r#"[{"name":"host","op":"=~","value":"web-.*"},{"name":"team","op":"!=","value":"ops"}]"#
        );
        assert_eq!(from(&stored), alertmanager);
        assert_eq!(from(r#""a=~x|y""#).to_string(), "a=~x|y");
        assert!(serde_json::from_str::<Matchers>("[]").is_err());
        assert!(serde_json::from_str::<Matchers>(r#"{"a": "(", "b=": "x"}"#).is_err());
    }
}
