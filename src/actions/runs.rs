//! Runs the server knows of: those under way — one per (tenant, action, target), so a double
//! click, a retried request or the same action on another panel cannot restart a VM twice —
//! and the newest finished ones,
//! for status requests and the panel's "last runs". Older runs are read back from the tenant's
//! `actions` table.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Finished runs kept in memory (the `actions` table keeps all of them).
const KEPT: usize = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Running, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One run as the API and the pages show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub run: String,
    pub tenant: String,
    pub panel: String,
    pub action: String,
    pub label: String,
    /// `vm=vm-1` (the key columns and values), or the panel id for a panel's action.
    pub target: String,
    pub actor: String,
    pub status: RunStatus,
    /// Epoch ms.
    pub started_at: i64,
    pub duration_ms: Option<i64>,
    pub attempts: u32,
    pub http_status: Option<u16>,
    pub error: Option<String>,
}

type Slot = (String, String, String);

fn slot(run: &Run) -> Slot {
    (run.tenant.clone(), run.action.clone(), run.target.clone())
}

#[derive(Default)]
pub struct Runs {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Run>,
    finished: VecDeque<String>,
    under_way: HashMap<Slot, String>,
}

impl Runs {
    /// Records `run` as under way, or names the run already under way for its target.
    pub fn begin(&self, run: Run) -> Result<(), String> {
        let mut inner = self.inner.lock();
        let slot = slot(&run);
        if let Some(id) = inner.under_way.get(&slot) {
            return Err(id.clone());
        }
        inner.under_way.insert(slot, run.run.clone());
        inner.by_id.insert(run.run.clone(), run);
        Ok(())
    }

    /// Replaces the run's record with its outcome and frees its target.
    pub fn finish(&self, run: Run) {
        let mut inner = self.inner.lock();
        inner.under_way.remove(&slot(&run));
        inner.finished.push_back(run.run.clone());
        inner.by_id.insert(run.run.clone(), run);
        while inner.finished.len() > KEPT {
            if let Some(old) = inner.finished.pop_front() {
                inner.by_id.remove(&old);
            }
        }
    }

    pub fn get(&self, tenant: &str, id: &str) -> Option<Run> {
        let inner = self.inner.lock();
        inner.by_id.get(id).filter(|r| r.tenant == tenant).cloned()
    }

    /// The panel's runs, newest first: those under way, then the newest finished.
    pub fn recent(&self, tenant: &str, panel: &str, max: usize) -> Vec<Run> {
        let inner = self.inner.lock();
        let mut runs: Vec<Run> = inner
            .by_id
            .values()
            .filter(|r| r.tenant == tenant && r.panel == panel)
            .cloned()
            .collect();
        runs.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.run.cmp(&a.run)));
        runs.truncate(max);
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, target: &str, at: i64) -> Run {
        Run {
            run: id.into(),
            tenant: "t".into(),
            panel: "vms".into(),
            action: "restart".into(),
            label: "Restart".into(),
            target: target.into(),
            actor: "user:ed".into(),
            status: RunStatus::Running,
            started_at: at,
            duration_ms: None,
            attempts: 0,
            http_status: None,
            error: None,
        }
    }

    #[test]
    fn one_run_per_target_at_a_time() {
        let runs = Runs::default();
        runs.begin(run("a", "vm=1", 1)).unwrap();
        assert_eq!(runs.begin(run("b", "vm=1", 2)).unwrap_err(), "a");
        runs.begin(run("c", "vm=2", 3)).unwrap();
        let mut elsewhere = run("e", "vm=1", 3);
        elsewhere.panel = "vm_page".into();
        assert_eq!(
            runs.begin(elsewhere).unwrap_err(),
            "a",
            "the same action on another panel"
        );
        let mut done = run("a", "vm=1", 1);
        done.status = RunStatus::Failed;
        runs.finish(done);
        runs.begin(run("d", "vm=1", 4)).unwrap();
        let recent: Vec<String> = runs
            .recent("t", "vms", 10)
            .into_iter()
            .map(|r| r.run)
            .collect();
        assert_eq!(recent, ["d", "c", "a"]);
        assert_eq!(runs.get("t", "a").unwrap().status, RunStatus::Failed);
        assert!(
            runs.get("other", "a").is_none(),
            "another tenant's run is not found"
        );
    }

    #[test]
    fn only_the_newest_finished_runs_stay() {
        let runs = Runs::default();
        for i in 0..(KEPT + 5) {
            let r = run(&i.to_string(), &format!("vm={i}"), i as i64);
            runs.begin(r.clone()).unwrap();
            runs.finish(r);
        }
        assert!(runs.get("t", "0").is_none());
        assert!(runs.get("t", &(KEPT + 4).to_string()).is_some());
    }
}
