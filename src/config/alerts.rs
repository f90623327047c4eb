//! `tenants/<tenant>/alerts/*.yaml`: alert rules, notification channels and the routes between
//! them. Each file may hold any of the three lists; names are unique across a tenant's files.
//!
//! ```yaml
//! rules:
//!   - name: cpu_high
//!     sql: SELECT host, avg(usage) AS value FROM cpu WHERE time >= $from AND time < $to GROUP BY host
//!     condition: "> 90"        # > >= < <= == != , or "outside [a, b]" ; or absent_for: 5m
//!     for: 5m                  # pending this long before firing
//!     every: 1m                # evaluation interval
//!     range: 5m                # $from = evaluation time - range, $to = evaluation time
//!     severity: critical       # critical | high | medium | low
//!     labels: {team: ops}
//!     message: "CPU on {{ host }} at {{ value }}%"
//!     no_data_state: nodata    # empty answer: nodata | alerting | ok | keep_last
//!     exec_err_state: error    # failing query: error | alerting | ok | keep_last
//! channels:
//!   - {name: ops, type: webhook, url: "http://127.0.0.1:9000/hook", format: alertmanager}
//!   - {name: mail, type: email, to: [ops@example.com]}
//!   - {name: inbox, type: in_app}
//! routes:
//!   - {channels: [ops, inbox], severity: [critical, high], group_by: [host], repeat_interval: 4h}
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::HumanDuration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// When a row's `value` is a problem.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Above(f64),
    AtLeast(f64),
    Below(f64),
    AtMost(f64),
    Equal(f64),
    NotEqual(f64),
    Outside(f64, f64),
    /// `value` is the series' last time (epoch ms or a timestamp): silent longer than this.
    AbsentFor(std::time::Duration),
}

impl Condition {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let number = |s: &str| {
            s.trim()
                .parse::<f64>()
                .map_err(|_| format!("`{}` is not a number", s.trim()))
        };
        if let Some(rest) = t.strip_prefix("outside") {
            let inner = rest
                .trim()
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .ok_or("expected `outside [low, high]`")?;
            let (a, b) = inner
                .split_once(',')
                .ok_or("expected `outside [low, high]`")?;
            let (a, b) = (number(a)?, number(b)?);
            if a > b {
                return Err(format!("`outside [{a}, {b}]`: low is above high"));
            }
            return Ok(Condition::Outside(a, b));
        }
        for (op, make) in [
            (">=", Condition::AtLeast as fn(f64) -> Condition),
            ("<=", Condition::AtMost),
            ("==", Condition::Equal),
            ("!=", Condition::NotEqual),
            (">", Condition::Above),
            ("<", Condition::Below),
        ] {
            if let Some(rest) = t.strip_prefix(op) {
                return Ok(make(number(rest)?));
            }
        }
        Err(format!(
            "condition `{t}`: expected `> N`, `>= N`, `< N`, `<= N`, `== N`, `!= N` or `outside [a, b]`"
        ))
    }

    /// Whether `value` (at `now_ms`) meets the condition.
    pub fn holds(&self, value: f64, now_ms: i64) -> bool {
        match *self {
            Condition::Above(x) => value > x,
            Condition::AtLeast(x) => value >= x,
            Condition::Below(x) => value < x,
            Condition::AtMost(x) => value <= x,
            Condition::Equal(x) => value == x,
            Condition::NotEqual(x) => value != x,
            Condition::Outside(a, b) => value < a || value > b,
            Condition::AbsentFor(d) => (now_ms as f64 - value) > d.as_millis() as f64,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    /// One row per series: label columns plus `value`. Binds $from, $to, $bucket, $origin.
    pub sql: Option<String>,
    /// Or a kpi / timeseries panel of the tenant: its value, or each series' last point.
    pub panel: Option<String>,
    pub condition: Option<String>,
    pub absent_for: Option<HumanDuration>,
    #[serde(rename = "for")]
    pub for_: Option<HumanDuration>,
    pub every: Option<HumanDuration>,
    pub range: Option<HumanDuration>,
    pub severity: Severity,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub message: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// What an empty answer does (Grafana's `noDataState`).
    #[serde(default)]
    pub no_data_state: NoDataState,
    /// What a failing query does (Grafana's `execErrState`).
    #[serde(default)]
    pub exec_err_state: ExecErrState,
    /// Or: one notification per new row of a table that matches (an event rule).
    pub event: Option<EventConfig>,
    /// Event rules: at most one notification per label set this often (the rest are counted
    /// and said in the next one).
    pub throttle: Option<HumanDuration>,
    /// Event rules: at most this many notifications per rule and day (UTC).
    pub daily_cap: Option<u32>,
}

/// `event:` of a rule: which new rows are events, what identifies their series, where their
/// picture is, and how late a row may arrive and still be noticed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventConfig {
    pub table: String,
    /// A SQL condition on the table's columns (`kind = 'person' AND zone = 'back'`).
    #[serde(rename = "where")]
    pub filter: Option<String>,
    /// Columns whose values make the label set throttling counts per (default: the table's
    /// declared tags).
    pub labels: Option<Vec<String>>,
    /// The attachment column whose picture goes with the notice (default: the table's first).
    pub attachment: Option<String>,
    /// A table panel listing these events: the notice links to it around the event's time.
    pub panel: Option<String>,
    /// Rows up to this much older than the newest evaluation are still noticed (default 15m).
    pub lookback: Option<HumanDuration>,
}

/// `nodata` (default): the rule is in nodata, and after `for` a `DatasourceNoData` alert goes to
/// the rule's routes; `alerting`: its series (or, without any, the rule itself) count as over
/// the threshold; `ok`: its series count as fine and resolve; `keep_last`: nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoDataState {
    #[default]
    #[serde(rename = "nodata")]
    NoData,
    Alerting,
    Ok,
    KeepLast,
}

/// As [`NoDataState`], for a failing query: `error` (default) sends `DatasourceError` after `for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecErrState {
    #[default]
    Error,
    Alerting,
    Ok,
    KeepLast,
}

/// How the evaluator treats a rule's series when the rule has no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemPolicy {
    /// The rule's own nodata/error instance is what people hear about.
    Report,
    Alerting,
    Ok,
    KeepLast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelType {
    Webhook,
    /// Alertmanager's own API (`POST <url>/api/v2/alerts`), not its webhook format.
    Alertmanager,
    Email,
    InApp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Alertmanager,
    Slack,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ChannelType,
    pub url: Option<String>,
    #[serde(default)]
    pub format: WebhookFormat,
    #[serde(default)]
    pub to: Vec<String>,
    pub from: Option<String>,
    /// SMTP server `host:port` (default: the server's `alerts.smtp`).
    pub smtp: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub channels: Vec<String>,
    /// Severities this route takes (default: all).
    #[serde(default)]
    pub severity: Vec<Severity>,
    /// Labels that must match exactly.
    #[serde(default, rename = "match")]
    pub matchers: BTreeMap<String, String>,
    /// Alerts with the same values of these labels go out in one message.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// A firing alert is sent again this often (default 4h).
    pub repeat_interval: Option<HumanDuration>,
    /// Stop at this route (default) or let later routes take the alert too.
    #[serde(default)]
    pub r#continue: bool,
}

/// One file of `alerts/`: any of the three lists.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertFile {
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default)]
    pub channels: Vec<ChannelConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// What a rule watches: series against a threshold, or new rows as events.
#[derive(Debug, Clone)]
pub enum Watch {
    Threshold(Condition),
    Event(EventWatch),
}

/// An event rule, checked: its query and what to read from each row.
#[derive(Debug, Clone)]
pub struct EventWatch {
    pub table: String,
    /// `SELECT * FROM <table> WHERE time > $from AND (<where>)`, newest first.
    pub sql: String,
    pub labels: Vec<String>,
    pub attachment: Option<String>,
    pub panel: Option<String>,
    pub lookback: std::time::Duration,
    pub throttle: std::time::Duration,
    pub daily_cap: Option<u32>,
}

/// A checked rule, ready for the evaluator.
#[derive(Debug, Clone)]
pub struct AlertRule {
    pub config: RuleConfig,
    pub watch: Watch,
    /// Where the rule is written, for runtime errors: `alerts/cpu.yaml:3`.
    pub origin: String,
    /// The YAML line the message template starts on (template errors map back to it).
    pub message_line: usize,
}

impl AlertRule {
    pub fn every(&self) -> std::time::Duration {
        self.config
            .every
            .map_or(std::time::Duration::from_secs(60), |d| d.0)
    }

    pub fn no_data_policy(&self) -> ProblemPolicy {
        match self.config.no_data_state {
            NoDataState::NoData => ProblemPolicy::Report,
            NoDataState::Alerting => ProblemPolicy::Alerting,
            NoDataState::Ok => ProblemPolicy::Ok,
            NoDataState::KeepLast => ProblemPolicy::KeepLast,
        }
    }

    pub fn error_policy(&self) -> ProblemPolicy {
        match self.config.exec_err_state {
            ExecErrState::Error => ProblemPolicy::Report,
            ExecErrState::Alerting => ProblemPolicy::Alerting,
            ExecErrState::Ok => ProblemPolicy::Ok,
            ExecErrState::KeepLast => ProblemPolicy::KeepLast,
        }
    }

    pub fn pending_for(&self) -> std::time::Duration {
        self.config.for_.map_or(std::time::Duration::ZERO, |d| d.0)
    }

    pub fn range(&self) -> std::time::Duration {
        self.config
            .range
            .map_or(std::time::Duration::from_secs(300), |d| d.0)
    }
}

/// The channel every tenant has without defining it: the users who subscribed on `/account`.
pub const SUBSCRIBERS: &str = "subscribers";

/// A tenant's alerting configuration.
#[derive(Debug, Clone, Default)]
pub struct TenantAlerts {
    pub rules: Vec<AlertRule>,
    pub channels: BTreeMap<String, ChannelConfig>,
    pub routes: Vec<RouteConfig>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_and_hold() {
        assert_eq!(Condition::parse("> 80").unwrap(), Condition::Above(80.0));
        assert_eq!(Condition::parse(">=0.9").unwrap(), Condition::AtLeast(0.9));
        assert_eq!(
            Condition::parse("outside [1, 5]").unwrap(),
            Condition::Outside(1.0, 5.0)
        );
        assert!(Condition::parse("outside [5, 1]").is_err());
        assert!(
            Condition::parse("> lots")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(Condition::parse("~ 3").is_err());
        assert!(Condition::Above(80.0).holds(80.5, 0));
        assert!(!Condition::Above(80.0).holds(80.0, 0));
        assert!(
            Condition::Outside(1.0, 5.0).holds(0.5, 0)
                && !Condition::Outside(1.0, 5.0).holds(3.0, 0)
        );
        let absent = Condition::AbsentFor(std::time::Duration::from_secs(300));
        assert!(absent.holds(0.0, 300_001) && !absent.holds(0.0, 300_000));
    }
}
