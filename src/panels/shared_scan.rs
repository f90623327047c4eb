//! Shared scans: panels that aggregate the same rows — same table, filter, range, buckets and
//! groups, different aggregates (the KPIs or charts of one dashboard, which a browser asks for
//! all at once) — run as one query with a column per aggregate instead of one query each, so
//! the files, the rollups and the partial buckets at the range's ends are read once.
//!
//! The first asker waits `panels.shared_scan_wait` (3 ms) for the others, then runs the query for everyone who
//! joined and hands each its column. A shared query that fails or is abandoned (its caller
//! went away) hands nothing on: each member then runs its own query, so an error is always
//! the caller's own.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::{PanelError, Run};
use crate::query::Params;

/// The prefix of the shared query's aggregate columns (nobody's own column is named so).
const COLUMN: &str = "__opsboard_shared_";

/// One aggregate over some rows: `SELECT {keys}, {aggregate} AS value {rest}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregated {
    /// The grouping columns with their aliases, before the aggregate (empty for none);
    /// `rest` groups by their positions.
    pub keys: String,
    pub aggregate: String,
    /// `FROM … WHERE … [GROUP BY …] [ORDER BY …]`.
    pub rest: String,
}

impl Aggregated {
    /// The query for this aggregate alone.
    pub fn sql(&self) -> String {
        self.sql_for(&[(self.aggregate.as_str(), "value".to_string())])
    }

    fn sql_for(&self, columns: &[(&str, String)]) -> String {
        let columns: Vec<String> = columns
            .iter()
            .map(|(aggregate, alias)| format!("{aggregate} AS {alias}"))
            .collect();
        let keys = if self.keys.is_empty() {
            String::new()
        } else {
            format!("{}, ", self.keys)
        };
        format!("SELECT {keys}{} {}", columns.join(", "), self.rest)
    }
}

/// Rows asked for by a shape and its parameters, in one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// The tenant's store (held by every member while the gathering is open).
    store: usize,
    keys: String,
    rest: String,
    params: String,
}

/// A shared query being gathered: the distinct aggregates asked for so far.
struct Gathering {
    aggregates: Mutex<Vec<String>>,
    answer: watch::Receiver<Option<Arc<Vec<RecordBatch>>>>,
}

/// Whether a caller runs the shared query or waits for it.
enum Turn {
    Lead(watch::Sender<Option<Arc<Vec<RecordBatch>>>>, Arc<Gathering>),
    Join(watch::Receiver<Option<Arc<Vec<RecordBatch>>>>),
}

pub struct SharedScans {
    /// How long the first asker waits for others (`panels.shared_scan_wait`): the panel
    /// requests of one page load arrive within a millisecond or two of each other; a panel
    /// asked for alone pays it once per miss. Zero: no sharing.
    wait: Duration,
    gathering: Mutex<HashMap<Key, Arc<Gathering>>>,
    /// Aggregates answered by a query another panel ran.
    shared: AtomicU64,
}

/// Closes the leader's gathering however its turn ends (answer, error, cancellation).
struct Close<'a> {
    scans: &'a SharedScans,
    key: &'a Key,
    gathering: &'a Arc<Gathering>,
}

impl Close<'_> {
    /// No one joins after this.
    fn close(&self) {
        let mut gathering = self.scans.gathering.lock();
        if gathering
            .get(self.key)
            .is_some_and(|g| Arc::ptr_eq(g, self.gathering))
        {
            gathering.remove(self.key);
        }
    }
}

impl Drop for Close<'_> {
    fn drop(&mut self) {
        self.close();
    }
}

impl SharedScans {
    pub fn new(wait: Duration) -> Self {
        Self {
            wait,
            gathering: Mutex::default(),
            shared: AtomicU64::new(0),
        }
    }

    pub fn shared(&self) -> u64 {
        self.shared.load(Ordering::Relaxed)
    }

    /// `query`'s rows (`keys…, value`), from a query shared with the panels asking for the
    /// same rows meanwhile.
    pub async fn rows(
        &self,
        run: &Run<'_>,
        query: &Aggregated,
        params: &Params,
    ) -> Result<Vec<RecordBatch>, PanelError> {
        if self.wait.is_zero() {
            return run.rows(&query.sql(), params).await;
        }
        let key = Key {
            store: Arc::as_ptr(run.store) as usize,
            keys: query.keys.clone(),
            rest: query.rest.clone(),
            params: params_key(params),
        };
        let (turn, index) = self.turn(&key, &query.aggregate);
        let answer = match turn {
            Turn::Lead(tx, gathering) => {
                let close = Close {
                    scans: self,
                    key: &key,
                    gathering: &gathering,
                };
                self.lead(run, query, params, tx, close).await?
            }
            Turn::Join(mut rx) => {
                let answer = match rx.wait_for(Option::is_some).await {
                    Ok(batches) => batches.clone(),
                    Err(_) => None,
                };
                if answer.is_some() {
                    self.shared.fetch_add(1, Ordering::Relaxed);
                }
                answer
            }
        };
        match answer.and_then(|batches| column_of(&batches, index)) {
            Some(mine) => Ok(mine),
            None => run.rows(&query.sql(), params).await,
        }
    }

    /// The first asker's turn: waits for the others, closes the gathering, runs the query for
    /// every aggregate asked for and hands its batches to those waiting. `None` when a shared
    /// query failed (each member then runs its own).
    async fn lead(
        &self,
        run: &Run<'_>,
        query: &Aggregated,
        params: &Params,
        tx: watch::Sender<Option<Arc<Vec<RecordBatch>>>>,
        close: Close<'_>,
    ) -> Result<Option<Arc<Vec<RecordBatch>>>, PanelError> {
        tokio::time::sleep(self.wait).await;
        close.close();
        let aggregates = close.gathering.aggregates.lock().clone();
        let columns: Vec<(&str, String)> = aggregates
            .iter()
            .enumerate()
            .map(|(i, a)| (a.as_str(), format!("{COLUMN}{i}")))
            .collect();
        match run.rows(&query.sql_for(&columns), params).await {
            Ok(batches) => {
                let batches = Arc::new(batches);
                // Nobody waiting is fine.
                let _ = tx.send(Some(batches.clone()));
                Ok(Some(batches))
            }
            // Its own aggregate alone: the error is the caller's.
            Err(error) if aggregates.len() == 1 => Err(error),
            Err(_) => Ok(None),
        }
    }

    /// Joins the gathering for `key` (adding `aggregate` unless asked for already) or opens one;
    /// with the aggregate's column index.
    fn turn(&self, key: &Key, aggregate: &str) -> (Turn, usize) {
        let mut gathering = self.gathering.lock();
        if let Some(open) = gathering.get(key) {
            let mut aggregates = open.aggregates.lock();
            let index = match aggregates.iter().position(|a| a == aggregate) {
                Some(i) => i,
                None => {
                    aggregates.push(aggregate.to_string());
                    aggregates.len() - 1
                }
            };
            return (Turn::Join(open.answer.clone()), index);
        }
        let (tx, rx) = watch::channel(None);
        let open = Arc::new(Gathering {
            aggregates: Mutex::new(vec![aggregate.to_string()]),
            answer: rx,
        });
        gathering.insert(key.clone(), open.clone());
        (Turn::Lead(tx, open), 0)
    }
}

/// Parameters in a stable order, as text (values of one name and type print alike).
fn params_key(params: &Params) -> String {
    let mut pairs: Vec<String> = params
        .iter()
        .map(|(name, value)| format!("{name}={value:?}"))
        .collect();
    pairs.sort();
    pairs.join("\u{1f}")
}

/// The grouping columns and aggregate `index` (as `value`) of the shared query's batches.
fn column_of(batches: &[RecordBatch], index: usize) -> Option<Vec<RecordBatch>> {
    let mine = format!("{COLUMN}{index}");
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let schema = batch.schema();
        let mut fields = vec![];
        let mut columns = vec![];
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            let name = field.name();
            if name == &mine {
                fields.push(Field::new("value", field.data_type().clone(), true));
            } else if !name.starts_with(COLUMN) {
                fields.push(field.as_ref().clone());
            } else {
                continue;
            }
            columns.push(column.clone());
        }
        if !fields.iter().any(|f| f.name() == "value") {
            return None;
        }
        out.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).ok()?);
    }
    Some(out)
}
