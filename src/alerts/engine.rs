//! The evaluator: every `alerts.tick` it runs the rules that are due (each at its own `every`,
//! measured on the injected clock), turns each answer row into an observation of one alert
//! instance, steps the instances, stores what changed (central database), appends every change
//! to the tenant's `alerts` table, pushes it to open pages, and hands the alerts that people
//! must hear about to the notifier (after silences).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::common::ScalarValue;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::AlertError;
use super::cycle::{self, Answer, Notice, Policy, Seen};
use super::event_rules::EventRules;
use super::history::{AlertEvent, History, HistoryRow};
use super::notify::Notifier;
use super::observation::{Observation, panel_observations, sql_observations};
use super::routing::Outgoing;
use super::rule_text::{rule_annotations, rule_message, sent_labels};
use super::state::{AlertState, Change, Instance, Labels, labels_key};
use super::store::{AlertStore, Silence};
use crate::clock::{SharedClock, Timestamp};
use crate::cluster::Leases;
use crate::config::{AlertRule, TenantAlerts, TenantPanels, Watch};
use crate::live::LiveConfigs;
use crate::panels::{PanelEngine, PanelRequest, RequestedRange};
use crate::query::QueryEngine;
use crate::storage::Store;

/// The label set of a rule's own instance (its nodata / error state).
const RULE_LABEL: &str = "__rule__";
const DEFAULT_REPEAT_MS: i64 = 4 * 3_600_000;

/// One cycle's answers of one tenant, by query (or panel) and range: evaluated at the same time,
/// they are the same answer.
type Source = (Option<String>, Option<String>, u128);
/// A rule's query answered as observations, or the error that stopped it.
type Observed = Result<Vec<Observation>, String>;
type Answers = HashMap<Source, Observed>;

/// Queries of one cycle running at once (each uses the query engine's own limits too).
const OBSERVED_AT_ONCE: usize = 8;

/// What a threshold rule reads: its SQL or panel, over its range.
fn source_of(rule: &AlertRule) -> Source {
    (
        rule.config.sql.clone(),
        rule.config.panel.clone(),
        rule.range().as_millis(),
    )
}

pub struct AlertEngine {
    store: AlertStore,
    tenants: Arc<Store>,
    query: Arc<QueryEngine>,
    configs: Arc<LiveConfigs>,
    panels: Arc<PanelEngine>,
    clock: SharedClock,
    notifier: Notifier,
    history: History,
    event_rules: EventRules,
    last_run: parking_lot::Mutex<HashMap<(String, String), i64>>,
    /// Each rule's instances as last stored, so a cycle reads the database only for a rule it
    /// has not seen since start (or whose last store failed). This evaluator is the only writer
    /// of instance state; acknowledgements are kept by the database (see `AlertStore::save`).
    instances: parking_lot::Mutex<HashMap<(String, String), BTreeMap<String, Instance>>>,
    /// Cancelled when the server stops, so open event streams end and let it.
    closing: tokio_util::sync::CancellationToken,
    /// With several nodes: only tenants whose lease this node holds are evaluated here.
    leases: Option<Arc<Leases>>,
}

fn ts(ms: i64) -> ScalarValue {
    ScalarValue::TimestampNanosecond(Some(ms * 1_000_000), None)
}

impl AlertEngine {
    /// Sends a notice the server raises itself (a quota warning) through the tenant's alert
    /// routes and channels, as a rule's alert would go; None (nothing sent) while its
    /// configuration has not loaded.
    pub async fn notify(
        &self,
        tenant: &str,
        alert: Outgoing,
    ) -> Option<Vec<tokio::task::JoinHandle<()>>> {
        let (config, _) = self.configs.current(tenant)?;
        let now = self.clock.now_ms();
        Some(
            self.notifier
                .dispatch(tenant, &config.alerts, vec![alert], now)
                .await,
        )
    }

    pub fn new(
        store: AlertStore,
        tenants: Arc<Store>,
        query: Arc<QueryEngine>,
        configs: Arc<LiveConfigs>,
        panels: Arc<PanelEngine>,
        clock: SharedClock,
        notifier: Notifier,
    ) -> Self {
        let history = History::new(tenants.clone(), panels.clone());
        let event_rules = EventRules::new(
            store.clone(),
            tenants.clone(),
            query.clone(),
            notifier.external_url().to_string(),
        );
        Self {
            store,
            tenants,
            query,
            configs,
            panels,
            clock,
            notifier,
            history,
            event_rules,
            last_run: parking_lot::Mutex::new(HashMap::new()),
            instances: parking_lot::Mutex::new(HashMap::new()),
            closing: tokio_util::sync::CancellationToken::new(),
            leases: None,
        }
    }

    /// Evaluates only the tenants whose lease this node holds (each rule once per cluster).
    pub fn with_leases(mut self, leases: Arc<Leases>) -> Self {
        self.leases = Some(leases);
        self
    }

    pub fn store(&self) -> &AlertStore {
        &self.store
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<AlertEvent> {
        self.history.subscribe()
    }

    /// Cancelled at shutdown: long-lived streams stop on it.
    pub fn closing(&self) -> tokio_util::sync::CancellationToken {
        self.closing.clone()
    }

    /// Runs every rule that is due now; returns how many ran and the deliveries started.
    pub async fn tick(&self) -> (usize, Vec<tokio::task::JoinHandle<()>>) {
        let now = self.clock.now_ms();
        let mut ran = 0;
        let mut deliveries = vec![];
        let configs = &self.configs;
        for tenant in configs.dashboard_tenants() {
            if self.leases.as_ref().is_some_and(|l| !l.owns(&tenant)) {
                continue;
            }
            let Some((config, _)) = configs.current(&tenant) else {
                continue;
            };
            let silences = match self.store.silences(&tenant, now).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(%tenant, error = %e, "cannot read silences");
                    continue;
                }
            };
            let mut outgoing = vec![];
            let due: Vec<&AlertRule> = config
                .alerts
                .rules
                .iter()
                .filter(|rule| self.take_turn(&tenant, rule, now))
                .collect();
            ran += due.len();
            let mut answers = self.observe_all(&tenant, &due, now).await;
            for rule in due {
                let evaluation = match &rule.watch {
                    Watch::Threshold(_) => {
                        self.evaluate(&tenant, &config, rule, &silences, &mut answers, now)
                            .await
                    }
                    Watch::Event(watch) => {
                        self.evaluate_events(&tenant, rule, watch, &silences, now)
                            .await
                    }
                };
                match evaluation {
                    Ok(mut out) => outgoing.append(&mut out),
                    Err(e) => {
                        tracing::error!(%tenant, rule = %rule.config.name, error = %e, "alert evaluation failed")
                    }
                }
            }
            if !outgoing.is_empty() {
                deliveries.extend(
                    self.notifier
                        .dispatch(&tenant, &config.alerts, outgoing, now)
                        .await,
                );
            }
        }
        (ran, deliveries)
    }

    /// Whether `rule` is due at `now`; if so it is marked as run.
    fn take_turn(&self, tenant: &str, rule: &AlertRule, now: i64) -> bool {
        let key = (tenant.to_string(), rule.config.name.clone());
        let mut last_run = self.last_run.lock();
        let due = last_run
            .get(&key)
            .is_none_or(|last| now - last >= rule.every().as_millis() as i64);
        if due {
            last_run.insert(key, now);
        }
        due
    }

    /// The answers of the due threshold rules' queries, each distinct query run once and
    /// several at a time: rules on panels over the same rows share one scan (the panel
    /// engine's shared scans), and the cycle uses both cores.
    async fn observe_all(&self, tenant: &str, due: &[&AlertRule], now: i64) -> Answers {
        let mut sources = HashMap::new();
        for rule in due {
            if matches!(rule.watch, Watch::Threshold(_)) {
                sources.entry(source_of(rule)).or_insert(*rule);
            }
        }
        let at_once = tokio::sync::Semaphore::new(OBSERVED_AT_ONCE);
        // Boxed with a named lifetime: the panel engine's future types nest too deep for the
        // compiler to prove `Send` through an unnamed one.
        let mut observing: Vec<BoxFuture<'_, (Source, Observed)>> = vec![];
        for (source, rule) in sources {
            let at_once = &at_once;
            observing.push(Box::pin(async move {
                let _turn = at_once.acquire().await;
                (source, self.observe(tenant, rule, now).await)
            }));
        }
        futures::future::join_all(observing)
            .await
            .into_iter()
            .collect()
    }

    /// The rule's answer as observations, or the error that stopped it.
    async fn observe(
        &self,
        tenant: &str,
        rule: &AlertRule,
        now: i64,
    ) -> Result<Vec<Observation>, String> {
        let from = now - rule.range().as_millis() as i64;
        if let Some(panel) = &rule.config.panel {
            let request = PanelRequest {
                between: Some(RequestedRange {
                    from_ns: Timestamp::from_ms(from).ns(),
                    to_ns: Timestamp::from_ms(now).ns(),
                }),
                ..Default::default()
            };
            let data = self
                .panels
                .data(tenant, panel, &request, now * 1_000_000)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(panel_observations(&data.answer));
        }
        let sql = rule.config.sql.as_deref().unwrap_or_default();
        let store = self
            .tenants
            .tenant(tenant)
            .await
            .map_err(|e| e.to_string())?;
        let mut params = crate::query::Params::new();
        params.insert("from".into(), ts(from));
        params.insert("to".into(), ts(now));
        params.insert("origin".into(), ts(from));
        params.insert(
            "bucket".into(),
            ScalarValue::new_interval_mdn(0, 0, rule.range().as_nanos() as i64),
        );
        let batches = self
            .query
            .collect_with_params(&store, sql, &params)
            .await
            .map_err(|e| e.to_string())?;
        Ok(sql_observations(&batches))
    }

    async fn evaluate(
        &self,
        tenant: &str,
        config: &TenantPanels,
        rule: &AlertRule,
        silences: &[Silence],
        answers: &mut Answers,
        now: i64,
    ) -> Result<Vec<Outgoing>, AlertError> {
        let Watch::Threshold(condition) = &rule.watch else {
            return Ok(vec![]);
        };
        let name = &rule.config.name;
        let severity = rule.config.severity.as_str();
        let cache_key = (tenant.to_string(), name.clone());
        let cached = self.instances.lock().remove(&cache_key);
        let mut instances: BTreeMap<String, Instance> = match cached {
            Some(instances) => instances,
            None => self
                .store
                .instances(tenant, name)
                .await?
                .into_iter()
                .map(|i| (labels_key(&i.labels), i))
                .collect(),
        };
        let rule_labels: Labels = [(RULE_LABEL.to_string(), "rule".to_string())].into();
        let rule_key = labels_key(&rule_labels);
        // Rules sharing a query and range (say disk > 80 and disk > 90) share one run of it.
        let source = source_of(rule);
        let observed = match answers.get(&source) {
            Some(answer) => answer.clone(),
            None => {
                let answer = self.observe(tenant, rule, now).await;
                answers.insert(source, answer.clone());
                answer
            }
        };
        let answer = match observed {
            Err(e) => Answer::Error(e),
            Ok(rows) if rows.is_empty() => Answer::NoData,
            Ok(rows) => Answer::Series(
                rows.iter()
                    .map(|obs| Seen {
                        labels: obs.labels.clone(),
                        value: obs.value,
                        holds: condition.holds(obs.value, now),
                        message: self.message(rule, obs),
                    })
                    .collect(),
            ),
        };
        let policy = Policy {
            pending_for: rule.pending_for(),
            no_data: rule.no_data_policy(),
            error: rule.error_policy(),
            repeat_ms: repeat_interval(&config.alerts, rule),
        };
        let step = cycle::step(
            &mut instances,
            &rule_key,
            &rule_labels,
            answer,
            &policy,
            |labels| silences.iter().any(|s| s.covers(name, labels, now)),
            now,
        );
        let mut outgoing = vec![];
        for (key, notice) in &step.notices {
            let Some(instance) = instances.get(key) else {
                continue;
            };
            outgoing.push(match *notice {
                Notice::Firing => self.outgoing(rule, instance, Change::Firing, now),
                Notice::Resolved => self.outgoing(rule, instance, Change::Resolved, now),
                Notice::Problem(state) => {
                    problem_outgoing(rule, instance, state, instance.since, None)
                }
                Notice::ProblemCleared { state, since } => {
                    problem_outgoing(rule, instance, state, since, Some(now))
                }
            });
        }
        for o in &mut outgoing {
            o.repeat_ms = policy.repeat_ms;
        }
        let changed: Vec<&Instance> = step.save.iter().filter_map(|k| instances.get(k)).collect();
        self.store
            .save(tenant, name, severity, &changed, now)
            .await?;
        let changes = step.changes;
        self.record(tenant, rule, &instances, &changes, now).await;
        self.instances.lock().insert(cache_key, instances);
        Ok(outgoing)
    }

    fn message(&self, rule: &AlertRule, obs: &Observation) -> String {
        let mut context = obs.row.clone();
        context.insert("value".into(), json!(obs.value));
        context.insert("labels".into(), json!(obs.labels));
        rule_message(rule, context, || {
            format!("{} = {}", rule.config.name, obs.value)
        })
    }

    fn outgoing(
        &self,
        rule: &AlertRule,
        instance: &Instance,
        change: Change,
        now: i64,
    ) -> Outgoing {
        let labels = sent_labels(rule, &instance.labels);
        let mut context = serde_json::Map::new();
        for (k, v) in &instance.labels {
            context.insert(k.clone(), json!(v));
        }
        context.insert("value".into(), json!(instance.value));
        let annotations = rule_annotations(rule, &Value::Object(context));
        Outgoing {
            rule: rule.config.name.clone(),
            severity: rule.config.severity.as_str().into(),
            labels,
            annotations,
            message: instance.message.clone(),
            change,
            starts_at: instance.fired_at.unwrap_or(now),
            ends_at: (change == Change::Resolved).then_some(now),
            value: instance.value,
            panel: rule.config.panel.clone(),
            repeat_ms: DEFAULT_REPEAT_MS,
            event: None,
        }
    }

    /// An event rule's run: its new rows to the `alerts` table, its notices out.
    async fn evaluate_events(
        &self,
        tenant: &str,
        rule: &AlertRule,
        watch: &crate::config::EventWatch,
        silences: &[Silence],
        now: i64,
    ) -> Result<Vec<Outgoing>, AlertError> {
        let judged = self
            .event_rules
            .evaluate(tenant, rule, watch, silences, now)
            .await?;
        self.history.append(tenant, rule, judged.history, now).await;
        Ok(judged.outgoing)
    }

    /// Appends changes to the tenant's `alerts` table (see [`History::append`]).
    async fn record(
        &self,
        tenant: &str,
        rule: &AlertRule,
        instances: &BTreeMap<String, Instance>,
        changes: &[(String, Change)],
        now: i64,
    ) {
        let rows: Vec<HistoryRow> = changes
            .iter()
            .filter_map(|(key, change)| {
                let i = instances.get(key)?;
                Some(HistoryRow {
                    state: change.as_str(),
                    labels: i.labels.clone(),
                    message: i.message.clone(),
                    value: i.value,
                })
            })
            .collect();
        self.history.append(tenant, rule, rows, now).await;
    }
}

/// The rule's own problem as Grafana sends it: `DatasourceNoData` / `DatasourceError`, with the
/// rule's name in `rulename` and its labels and severity, so routes and silences apply.
/// `started`: when the problem began; `cleared`: when it ended, for a resolution.
fn problem_outgoing(
    rule: &AlertRule,
    instance: &Instance,
    state: AlertState,
    started: i64,
    cleared: Option<i64>,
) -> Outgoing {
    let (alertname, change) = match state {
        AlertState::Error => ("DatasourceError", Change::Error),
        _ => ("DatasourceNoData", Change::NoData),
    };
    let mut labels = rule.config.labels.clone();
    labels.insert("alertname".into(), alertname.into());
    labels.insert("rulename".into(), rule.config.name.clone());
    labels.insert("severity".into(), rule.config.severity.as_str().into());
    let message = match state {
        AlertState::Error => format!(
            "{} cannot be evaluated: {}",
            rule.config.name, instance.message
        ),
        _ => format!("{} has no data", rule.config.name),
    };
    let mut annotations = BTreeMap::new();
    if state == AlertState::Error {
        annotations.insert("error".to_string(), instance.message.clone());
    }
    Outgoing {
        rule: rule.config.name.clone(),
        severity: rule.config.severity.as_str().into(),
        labels,
        annotations,
        message,
        change: if cleared.is_some() {
            Change::Resolved
        } else {
            change
        },
        starts_at: started,
        ends_at: cleared,
        value: None,
        panel: rule.config.panel.clone(),
        repeat_ms: DEFAULT_REPEAT_MS,
        event: None,
    }
}

/// The shortest repeat interval of the routes that would take this rule's alerts.
fn repeat_interval(alerts: &TenantAlerts, rule: &AlertRule) -> i64 {
    alerts
        .routes
        .iter()
        .filter(|r| r.severity.is_empty() || r.severity.contains(&rule.config.severity))
        .filter_map(|r| r.repeat_interval.map(|d| d.0.as_millis() as i64))
        .min()
        .unwrap_or(DEFAULT_REPEAT_MS)
}
