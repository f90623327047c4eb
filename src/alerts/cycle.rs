//! One evaluation of one rule, pure: given the rule's instances, its answer (series, no data, or
//! an error), its policies and the time, step every instance and say what changed, what people
//! must hear about, and what must be stored. The engine does the I/O around it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use super::state::{AlertState, Change, Instance, Labels, labels_key};
use crate::config::ProblemPolicy;

/// One row of the answer: its series, value, whether the condition holds, and its message.
#[derive(Debug, Clone)]
pub struct Seen {
    pub labels: Labels,
    pub value: f64,
    pub holds: bool,
    pub message: String,
}

#[derive(Debug, Clone)]
pub enum Answer {
    Series(Vec<Seen>),
    /// The query ran and returned nothing usable.
    NoData,
    Error(String),
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub pending_for: Duration,
    pub no_data: ProblemPolicy,
    pub error: ProblemPolicy,
    pub repeat_ms: i64,
}

/// What people are told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Firing,
    Resolved,
    /// The rule itself has had no data (or has failed) for `for`: `DatasourceNoData` /
    /// `DatasourceError`, as Grafana names them.
    Problem(AlertState),
    /// That problem (the state named, which began at `since`) is over.
    ProblemCleared {
        state: AlertState,
        since: i64,
    },
}

#[derive(Debug, Default)]
pub struct Step {
    pub changes: Vec<(String, Change)>,
    pub notices: Vec<(String, Notice)>,
    /// Instances whose stored state moved on.
    pub save: Vec<String>,
}

/// Steps a rule's instances (keyed by [`labels_key`]; `rule_key` is the rule's own instance).
pub fn step(
    instances: &mut BTreeMap<String, Instance>,
    rule_key: &str,
    rule_labels: &Labels,
    answer: Answer,
    policy: &Policy,
    silenced: impl Fn(&Labels) -> bool,
    now: i64,
) -> Step {
    let mut out = Step::default();
    let rule = instances
        .entry(rule_key.to_string())
        .or_insert_with(|| Instance::new(rule_labels.clone(), now));
    let (rule_before, rule_since_before) = (rule.state, rule.since);
    let (error, empty) = match &answer {
        Answer::Error(e) => (Some(e.as_str()), false),
        Answer::NoData => (None, true),
        Answer::Series(_) => (None, false),
    };
    if let Some(change) = rule.observe_rule(error, empty, now) {
        out.changes.push((rule_key.to_string(), change));
    }
    let series_keys: Vec<String> = instances
        .keys()
        .filter(|k| k.as_str() != rule_key)
        .cloned()
        .collect();
    let mut observe = |key: &str, holds: Option<bool>, instances: &mut BTreeMap<_, Instance>| {
        if let Some(i) = instances.get_mut(key)
            && let Some(change) = i.observe(holds, policy.pending_for, now)
        {
            out.changes.push((key.to_string(), change));
        }
    };
    let (problem, problem_policy) = match answer {
        Answer::Series(rows) => {
            let mut seen = HashSet::new();
            for row in rows {
                let key = labels_key(&row.labels);
                let i = instances
                    .entry(key.clone())
                    .or_insert_with(|| Instance::new(row.labels.clone(), now));
                i.value = Some(row.value);
                i.message = row.message;
                observe(&key, Some(row.holds), instances);
                seen.insert(key);
            }
            // Series that stopped answering resolve (or stop pending).
            for key in series_keys.iter().filter(|k| !seen.contains(*k)) {
                observe(key, None, instances);
            }
            (None, None)
        }
        Answer::NoData => (Some("no data".to_string()), Some(policy.no_data)),
        Answer::Error(e) => (Some(e), Some(policy.error)),
    };
    match (problem, problem_policy) {
        // No data: the series are gone, so they resolve; an error says nothing about them.
        (_, Some(ProblemPolicy::Report)) if empty => {
            for key in &series_keys {
                observe(key, None, instances);
            }
        }
        (Some(problem), Some(ProblemPolicy::Alerting)) => {
            let mut keys = series_keys.clone();
            if keys.is_empty() {
                // Nothing ever answered: the rule itself (no labels) is what is alerting.
                let key = labels_key(&Labels::new());
                instances
                    .entry(key.clone())
                    .or_insert_with(|| Instance::new(Labels::new(), now));
                keys.push(key);
            }
            for key in &keys {
                if let Some(i) = instances.get_mut(key) {
                    i.message = format!("alerting on {problem}");
                }
                observe(key, Some(true), instances);
            }
        }
        (_, Some(ProblemPolicy::Ok)) => {
            for key in &series_keys {
                observe(key, Some(false), instances);
            }
        }
        _ => {}
    }

    out.save = out.changes.iter().map(|(k, _)| k.clone()).collect();
    // An instance changes at most once per evaluation; the first change is the one.
    let mut changed: HashMap<String, Change> = HashMap::with_capacity(out.changes.len());
    for (k, c) in &out.changes {
        changed.entry(k.clone()).or_insert(*c);
    }
    let pending_ms = policy.pending_for.as_millis() as i64;
    let repeat_due = |i: &Instance| i.last_notified.is_none_or(|t| now - t >= policy.repeat_ms);
    for (key, i) in instances.iter_mut() {
        let change = changed.get(key).copied();
        let silenced = silenced(&i.labels);
        let mut notice = |n: Notice, save: &mut Vec<String>| {
            if !silenced {
                out.notices.push((key.clone(), n));
            }
            save.push(key.clone());
        };
        if key == rule_key {
            let reported = match i.state {
                AlertState::NoData => policy.no_data == ProblemPolicy::Report,
                AlertState::Error => policy.error == ProblemPolicy::Report,
                _ => false,
            };
            // A problem people heard about ended, or became the other problem.
            if change.is_some() && i.last_notified.is_some() && rule_before != i.state {
                let cleared = Notice::ProblemCleared {
                    state: rule_before,
                    since: rule_since_before,
                };
                notice(cleared, &mut out.save);
                i.last_notified = None;
            }
            if reported && now - i.since >= pending_ms && repeat_due(i) {
                notice(Notice::Problem(i.state), &mut out.save);
                if !silenced {
                    i.last_notified = Some(now);
                }
            }
            continue;
        }
        match (i.state, change) {
            (AlertState::Firing, _) if repeat_due(i) => {
                notice(Notice::Firing, &mut out.save);
                if !silenced {
                    i.last_notified = Some(now);
                }
            }
            (_, Some(Change::Resolved)) => {
                if i.last_notified.is_some() {
                    notice(Notice::Resolved, &mut out.save);
                }
                i.last_notified = None;
            }
            _ => {}
        }
    }
    out.save.sort();
    out.save.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const RULE: &str = "{\"__rule__\":\"rule\"}";

    fn rule_labels() -> Labels {
        [("__rule__".to_string(), "rule".to_string())].into()
    }

    fn host(name: &str) -> Labels {
        [("host".to_string(), name.to_string())].into()
    }

    fn series(rows: &[(&str, bool)]) -> Answer {
        Answer::Series(
            rows.iter()
                .map(|(h, holds)| Seen {
                    labels: host(h),
                    value: if *holds { 99.0 } else { 1.0 },
                    holds: *holds,
                    message: format!("{h} hot"),
                })
                .collect(),
        )
    }

    struct Rule {
        instances: BTreeMap<String, Instance>,
        policy: Policy,
        silence_all: bool,
    }

    impl Rule {
        fn new(pending_min: u64, no_data: ProblemPolicy, error: ProblemPolicy) -> Self {
            Self {
                instances: BTreeMap::new(),
                policy: Policy {
                    pending_for: Duration::from_secs(pending_min * 60),
                    no_data,
                    error,
                    repeat_ms: 60 * MIN,
                },
                silence_all: false,
            }
        }

        /// The notices of one evaluation, as (series or "rule", notice).
        fn at(&mut self, t: i64, answer: Answer) -> Vec<(String, Notice)> {
            let silence_all = self.silence_all;
            let step = step(
                &mut self.instances,
                RULE,
                &rule_labels(),
                answer,
                &self.policy,
                |_| silence_all,
                t,
            );
            step.notices
                .into_iter()
                .map(|(k, n)| {
                    let who = match self.instances[&k].labels.get("host") {
                        Some(h) => h.clone(),
                        None if k == RULE => "rule".into(),
                        None => "{}".into(),
                    };
                    (who, n)
                })
                .collect()
        }
    }

    fn n(who: &str, notice: Notice) -> Vec<(String, Notice)> {
        vec![(who.to_string(), notice)]
    }

    #[test]
    fn firing_repeats_after_the_interval_and_resolves_once() {
        use ProblemPolicy::Report;
        let mut r = Rule::new(0, Report, Report);
        assert_eq!(r.at(0, series(&[("a", true)])), n("a", Notice::Firing));
        assert_eq!(r.at(MIN, series(&[("a", true)])), vec![]);
        assert_eq!(
            r.at(60 * MIN, series(&[("a", true)])),
            n("a", Notice::Firing)
        );
        assert_eq!(
            r.at(61 * MIN, series(&[("a", false)])),
            n("a", Notice::Resolved)
        );
        assert_eq!(r.at(62 * MIN, series(&[("a", false)])), vec![]);
    }

    #[test]
    fn nodata_is_reported_after_for_and_cleared_once() {
        use ProblemPolicy::Report;
        let mut r = Rule::new(2, Report, Report);
        assert_eq!(r.at(0, Answer::NoData), vec![]);
        assert_eq!(r.at(MIN, Answer::NoData), vec![], "pending for 2m");
        assert_eq!(
            r.at(2 * MIN, Answer::NoData),
            n("rule", Notice::Problem(AlertState::NoData))
        );
        assert_eq!(r.at(3 * MIN, Answer::NoData), vec![], "not repeated early");
        assert_eq!(
            r.at(4 * MIN, series(&[("a", false)])),
            n(
                "rule",
                Notice::ProblemCleared {
                    state: AlertState::NoData,
                    since: 0
                }
            ),
            "the resolution carries when the problem began, not when it ended"
        );
        // A short gap never reaches people.
        assert_eq!(r.at(5 * MIN, Answer::NoData), vec![]);
        assert_eq!(r.at(6 * MIN, series(&[("a", false)])), vec![]);
    }

    #[test]
    fn an_error_turning_into_nodata_clears_one_and_reports_the_other() {
        use ProblemPolicy::Report;
        let mut r = Rule::new(0, Report, Report);
        assert_eq!(
            r.at(0, Answer::Error("table gone".into())),
            n("rule", Notice::Problem(AlertState::Error))
        );
        assert_eq!(r.instances[RULE].message, "table gone");
        assert_eq!(
            r.at(MIN, Answer::NoData),
            vec![
                (
                    "rule".into(),
                    Notice::ProblemCleared {
                        state: AlertState::Error,
                        since: 0
                    }
                ),
                ("rule".into(), Notice::Problem(AlertState::NoData)),
            ]
        );
    }

    #[test]
    fn report_policy_resolves_series_on_nodata_but_keeps_them_on_error() {
        use ProblemPolicy::Report;
        let mut r = Rule::new(0, Report, Report);
        r.at(0, series(&[("a", true)]));
        let notices = r.at(MIN, Answer::Error("timeout".into()));
        assert_eq!(notices, n("rule", Notice::Problem(AlertState::Error)));
        assert_eq!(r.instances["{\"host\":\"a\"}"].state, AlertState::Firing);
        let notices = r.at(2 * MIN, Answer::NoData);
        assert!(
            notices.contains(&("a".into(), Notice::Resolved)),
            "{notices:?}"
        );
    }

    #[test]
    fn alerting_policy_fires_the_series_or_the_rule_itself() {
        use ProblemPolicy::{Alerting, Report};
        let mut r = Rule::new(1, Alerting, Alerting);
        // Never answered: the rule (no labels) goes pending, then fires.
        assert_eq!(r.at(0, Answer::NoData), vec![]);
        assert_eq!(r.at(MIN, Answer::NoData), n("{}", Notice::Firing));
        assert_eq!(r.instances["{}"].message, "alerting on no data");
        // Data again: it resolves, and the rule's nodata was never reported.
        let notices = r.at(2 * MIN, series(&[("a", false)]));
        assert_eq!(notices, n("{}", Notice::Resolved));
        // An error with a known series fires that series.
        let mut r = Rule::new(0, Report, Alerting);
        r.at(0, series(&[("a", false), ("b", false)]));
        let notices = r.at(MIN, Answer::Error("boom".into()));
        assert_eq!(
            notices,
            vec![("a".into(), Notice::Firing), ("b".into(), Notice::Firing)]
        );
        assert_eq!(r.instances["{\"host\":\"a\"}"].message, "alerting on boom");
    }

    #[test]
    fn ok_and_keep_last_policies() {
        use ProblemPolicy::{KeepLast, Ok};
        let mut r = Rule::new(0, Ok, KeepLast);
        r.at(0, series(&[("a", true)]));
        assert_eq!(r.at(MIN, Answer::Error("x".into())), vec![], "keep last");
        assert_eq!(r.instances["{\"host\":\"a\"}"].state, AlertState::Firing);
        assert_eq!(r.at(2 * MIN, Answer::NoData), n("a", Notice::Resolved));
        assert_eq!(r.at(60 * MIN, Answer::NoData), vec![], "never reported");
    }

    #[test]
    fn silenced_problems_and_alerts_are_not_sent_nor_marked_sent() {
        use ProblemPolicy::Report;
        let mut r = Rule::new(0, Report, Report);
        r.silence_all = true;
        assert_eq!(r.at(0, series(&[("a", true)])), vec![]);
        assert_eq!(r.at(MIN, Answer::NoData), vec![]);
        assert!(r.instances.values().all(|i| i.last_notified.is_none()));
        // The silence ends while the problem lasts: it is reported then.
        r.silence_all = false;
        assert_eq!(
            r.at(2 * MIN, Answer::NoData),
            n("rule", Notice::Problem(AlertState::NoData))
        );
    }
}
