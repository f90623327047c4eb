//! The life of one alert instance (one rule × one label set), as in Grafana:
//! inactive → pending → firing → (resolved) → inactive, with `nodata` and `error` held by the
//! rule's own instance (empty label set) when the query returns nothing or fails. Pure: the
//! evaluator feeds observations and the time, and persists what comes out.

use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
    NoData,
    Error,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::NoData => "nodata",
            AlertState::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "pending" => AlertState::Pending,
            "firing" => AlertState::Firing,
            "nodata" => AlertState::NoData,
            "error" => AlertState::Error,
            _ => AlertState::Inactive,
        }
    }
}

/// What changed, as written to the tenant's `alerts` table and sent to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Pending,
    Firing,
    /// Firing → inactive: the one people are told about.
    Resolved,
    /// Pending → inactive, or the rule's nodata/error cleared.
    Inactive,
    NoData,
    Error,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Pending => "pending",
            Change::Firing => "firing",
            Change::Resolved => "resolved",
            Change::Inactive => "inactive",
            Change::NoData => "nodata",
            Change::Error => "error",
        }
    }

    /// Firing and resolved go to channels; the rest is history only.
    pub fn notifies(self) -> bool {
        matches!(self, Change::Firing | Change::Resolved)
    }
}

pub type Labels = BTreeMap<String, String>;

/// The label set as stored: canonical JSON (keys sorted).
pub fn labels_key(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub labels: Labels,
    pub state: AlertState,
    /// When the current state began.
    pub since: i64,
    pub value: Option<f64>,
    pub message: String,
    pub fired_at: Option<i64>,
    pub last_notified: Option<i64>,
    pub acked_by: Option<String>,
    pub acked_at: Option<i64>,
}

impl Instance {
    pub fn new(labels: Labels, now: i64) -> Self {
        Self {
            labels,
            state: AlertState::Inactive,
            since: now,
            value: None,
            message: String::new(),
            fired_at: None,
            last_notified: None,
            acked_by: None,
            acked_at: None,
        }
    }

    fn enter(&mut self, state: AlertState, now: i64) {
        self.state = state;
        self.since = now;
        if state == AlertState::Firing {
            self.fired_at = Some(now);
        }
        if state != AlertState::Firing {
            // An acknowledgement is for one firing; the next one needs its own.
            self.acked_by = None;
            self.acked_at = None;
        }
    }

    /// One evaluation of a series instance: does the condition hold (None = the series is
    /// gone from the answer)? Returns the change, if any.
    pub fn observe(
        &mut self,
        holds: Option<bool>,
        pending_for: Duration,
        now: i64,
    ) -> Option<Change> {
        let holds = holds.unwrap_or(false);
        let due = |since: i64| now - since >= pending_for.as_millis() as i64;
        match (self.state, holds) {
            (AlertState::Inactive | AlertState::NoData | AlertState::Error, true) => {
                if pending_for.is_zero() {
                    self.enter(AlertState::Firing, now);
                    Some(Change::Firing)
                } else {
                    self.enter(AlertState::Pending, now);
                    Some(Change::Pending)
                }
            }
            (AlertState::Pending, true) if due(self.since) => {
                self.enter(AlertState::Firing, now);
                Some(Change::Firing)
            }
            (AlertState::Pending, false) => {
                self.enter(AlertState::Inactive, now);
                Some(Change::Inactive)
            }
            (AlertState::Firing, false) => {
                self.enter(AlertState::Inactive, now);
                Some(Change::Resolved)
            }
            _ => None,
        }
    }

    /// The rule's own instance: the query failed (`Some(error)`), returned nothing
    /// (`None` with `empty`), or answered (clears a nodata/error).
    pub fn observe_rule(&mut self, error: Option<&str>, empty: bool, now: i64) -> Option<Change> {
        let (target, change) = match (error, empty) {
            (Some(e), _) => {
                self.message = e.to_string();
                (AlertState::Error, Change::Error)
            }
            (None, true) => (AlertState::NoData, Change::NoData),
            (None, false) => (AlertState::Inactive, Change::Inactive),
        };
        if self.state == target {
            return None;
        }
        self.enter(target, now);
        Some(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn run(
        instance: &mut Instance,
        steps: &[(i64, Option<bool>)],
        pending: Duration,
    ) -> Vec<(i64, Change)> {
        steps
            .iter()
            .filter_map(|(t, holds)| instance.observe(*holds, pending, *t).map(|c| (*t, c)))
            .collect()
    }

    #[test]
    fn pending_then_firing_then_resolved() {
        let mut i = Instance::new(Labels::new(), 0);
        let changes = run(
            &mut i,
            &[
                (0, Some(true)),
                (MIN, Some(true)),
                (5 * MIN, Some(true)),
                (6 * MIN, Some(true)),
                (7 * MIN, Some(false)),
                (8 * MIN, Some(false)),
            ],
            Duration::from_secs(300),
        );
        assert_eq!(
            changes,
            vec![
                (0, Change::Pending),
                (5 * MIN, Change::Firing),
                (7 * MIN, Change::Resolved)
            ]
        );
        assert_eq!(i.state, AlertState::Inactive);
        assert_eq!(i.fired_at, Some(5 * MIN));
    }

    #[test]
    fn without_for_it_fires_at_once_and_a_vanished_series_resolves() {
        let mut i = Instance::new(Labels::new(), 0);
        let changes = run(&mut i, &[(0, Some(true)), (MIN, None)], Duration::ZERO);
        assert_eq!(changes, vec![(0, Change::Firing), (MIN, Change::Resolved)]);
    }

    #[test]
    fn flapping_never_outlasts_for() {
        let mut i = Instance::new(Labels::new(), 0);
        let steps: Vec<(i64, Option<bool>)> =
            (0..20).map(|k| (k * MIN, Some(k % 2 == 0))).collect();
        let changes = run(&mut i, &steps, Duration::from_secs(120));
        assert!(
            changes
                .iter()
                .all(|(_, c)| matches!(c, Change::Pending | Change::Inactive)),
            "{changes:?}"
        );
        assert_eq!(changes.len(), 20);
    }

    #[test]
    fn acknowledgement_lasts_one_firing() {
        let mut i = Instance::new(Labels::new(), 0);
        i.observe(Some(true), Duration::ZERO, 0);
        i.acked_by = Some("user:a".into());
        i.observe(Some(true), Duration::ZERO, MIN);
        assert!(i.acked_by.is_some());
        i.observe(Some(false), Duration::ZERO, 2 * MIN);
        assert!(i.acked_by.is_none());
    }

    #[test]
    fn rule_instance_tracks_nodata_and_error() {
        let mut r = Instance::new(Labels::new(), 0);
        assert_eq!(r.observe_rule(None, false, 0), None);
        assert_eq!(r.observe_rule(None, true, MIN), Some(Change::NoData));
        assert_eq!(r.observe_rule(None, true, 2 * MIN), None);
        assert_eq!(
            r.observe_rule(Some("table gone"), false, 3 * MIN),
            Some(Change::Error)
        );
        assert_eq!(r.message, "table gone");
        assert_eq!(r.observe_rule(None, false, 4 * MIN), Some(Change::Inactive));
    }
}
