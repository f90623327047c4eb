//! What all queries share, so that a few hostile (but authorised) ones cannot take the server:
//! one memory budget (each query also bounded within it), one bounded spill directory, and
//! admission — at most so many queries at once, in all and per tenant, the rest waiting a
//! bounded time and then refused with a retry hint.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::disk_manager::{DiskManager, DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::QueryConfig;

use super::QueryError;

/// The memory, disk and admission every query of this process draws from.
#[derive(Debug)]
pub struct Budget {
    shared: Arc<GreedyMemoryPool>,
    budget_bytes: usize,
    query_bytes: usize,
    disk: Arc<DiskManager>,
    all: Arc<Semaphore>,
    per_tenant: Mutex<HashMap<String, Arc<Semaphore>>>,
    per_tenant_limit: usize,
    queue_timeout: Duration,
}

/// Held while a query runs (planning to its last batch): its place in both queues.
#[derive(Debug)]
pub struct Admission {
    _all: OwnedSemaphorePermit,
    _tenant: OwnedSemaphorePermit,
}

impl Budget {
    /// `spill_dir` None (CLI, tools): sorts and joins that outgrow their memory fail instead of
    /// spilling.
    pub fn new(config: &QueryConfig, spill_dir: Option<PathBuf>) -> Self {
        let disk = match spill_dir.filter(|_| config.spill_bytes > 0) {
            Some(dir) => prepare_spill_dir(dir)
                .and_then(|dir| {
                    DiskManagerBuilder::default()
                        .with_mode(DiskManagerMode::Directories(vec![dir]))
                        .with_max_temp_directory_size(config.spill_bytes)
                        .build()
                })
                .unwrap_or_else(|e| {
                    tracing::warn!("query spilling disabled: {e}");
                    disabled_disk()
                }),
            None => disabled_disk(),
        };
        Self {
            shared: Arc::new(GreedyMemoryPool::new(config.memory_budget_bytes)),
            budget_bytes: config.memory_budget_bytes,
            query_bytes: config.memory_limit_bytes.min(config.memory_budget_bytes),
            disk: Arc::new(disk),
            all: Arc::new(Semaphore::new(config.max_concurrent)),
            per_tenant: Mutex::new(HashMap::new()),
            per_tenant_limit: config.max_concurrent_per_tenant,
            queue_timeout: config.queue_timeout.0,
        }
    }

    /// A memory pool for one query: its own limit, drawing from the shared budget.
    pub fn query_pool(&self) -> Arc<dyn MemoryPool> {
        Arc::new(QueryPool {
            shared: self.shared.clone(),
            limit: self.query_bytes,
            budget: self.budget_bytes,
            used: AtomicUsize::new(0),
        })
    }

    pub fn disk(&self) -> Arc<DiskManager> {
        self.disk.clone()
    }

    /// Bytes the running queries hold of the shared budget.
    pub fn memory_in_use(&self) -> usize {
        self.shared.reserved()
    }

    /// Waits for a place for one query of `tenant`, at most `queue_timeout`.
    pub async fn admit(&self, tenant: &str) -> Result<Admission, QueryError> {
        let tenant_slots = self
            .per_tenant
            .lock()
            .entry(tenant.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant_limit)))
            .clone();
        let busy = || QueryError::Busy {
            retry_after_secs: self.queue_timeout.as_secs().max(1),
        };
        let wait = async {
            // The tenant's own place first, so one tenant's queue never holds global places.
            let tenant = tenant_slots.acquire_owned().await.map_err(|_| busy())?;
            let all = self.all.clone().acquire_owned().await.map_err(|_| busy())?;
            Ok(Admission {
                _all: all,
                _tenant: tenant,
            })
        };
        tokio::time::timeout(self.queue_timeout, wait)
            .await
            .map_err(|_| busy())?
    }
}

fn disabled_disk() -> DiskManager {
    DiskManagerBuilder::default()
        .with_mode(DiskManagerMode::Disabled)
        .build()
        .expect("a disabled disk manager needs nothing")
}

/// Creates the spill folder, emptied: files left by a killed process are nobody's.
fn prepare_spill_dir(dir: PathBuf) -> DfResult<PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// One query's pool: refuses growth past the query's own limit, and past what the shared
/// budget has left.
#[derive(Debug)]
struct QueryPool {
    shared: Arc<GreedyMemoryPool>,
    limit: usize,
    budget: usize,
    used: AtomicUsize,
}

impl std::fmt::Display for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "query pool: {} of {} bytes",
            self.used.load(Ordering::Relaxed),
            self.limit
        )
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "opsboard-query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.shared.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.shared.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.shared.grow(reservation, additional)
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.shared.shrink(reservation, shrink)
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(additional).filter(|n| *n <= self.limit)
            })
            .map_err(|used| {
                DataFusionError::ResourcesExhausted(format!(
                    "{} wanted {additional} more bytes with {used} of this query's \
                     query.memory_limit_bytes ({}) in use",
                    reservation.consumer().name(),
                    self.limit
                ))
            })?;
        self.shared.try_grow(reservation, additional).map_err(|_| {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            DataFusionError::ResourcesExhausted(format!(
                "{} wanted {additional} more bytes; the queries running now hold {} of \
                     query.memory_budget_bytes ({})",
                reservation.consumer().name(),
                self.shared.reserved(),
                self.budget
            ))
        })
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    fn config(budget: usize, per_query: usize) -> QueryConfig {
        QueryConfig {
            memory_budget_bytes: budget,
            memory_limit_bytes: per_query,
            max_concurrent: 2,
            max_concurrent_per_tenant: 1,
            queue_timeout: HumanDuration(Duration::from_millis(50)),
            ..QueryConfig::default()
        }
    }

    #[test]
    fn each_query_is_bounded_and_all_share_the_budget() {
        let budget = Budget::new(&config(1000, 600), None);
        let (a, b) = (budget.query_pool(), budget.query_pool());
        let ra = MemoryConsumer::new("sort a").register(&a);
        let rb = MemoryConsumer::new("sort b").register(&b);
        ra.try_grow(500).unwrap();
        let err = ra.try_grow(200).unwrap_err().to_string();
        assert!(err.contains("query.memory_limit_bytes (600)"), "{err}");
        // B alone is within its limit, but the budget holds only 500 more.
        let err = rb.try_grow(550).unwrap_err().to_string();
        assert!(err.contains("query.memory_budget_bytes (1000)"), "{err}");
        assert_eq!(b.reserved(), 0, "a refused growth is given back");
        rb.try_grow(500).unwrap();
        assert_eq!(budget.memory_in_use(), 1000);
        drop(ra);
        assert_eq!(budget.memory_in_use(), 500);
        rb.try_grow(100).unwrap();
    }

    #[tokio::test]
    async fn admission_queues_then_refuses_per_tenant_and_in_all() {
        let budget = Budget::new(&config(1000, 1000), None);
        let first = budget.admit("acme").await.unwrap();
        let err = budget.admit("acme").await.unwrap_err();
        assert!(matches!(err, QueryError::Busy { .. }), "{err}");
        // Another tenant is not held up by acme's queue.
        let other = budget.admit("globex").await.unwrap();
        // Both global places taken: a third tenant waits, then is refused.
        assert!(budget.admit("initech").await.is_err());
        drop(first);
        let again = budget.admit("acme").await.unwrap();
        drop((other, again));
    }

    /// A sort four times the query's limit finishes by spilling, and leaves no file behind.
    #[tokio::test]
    async fn sorts_past_the_limit_spill_to_the_bounded_directory() {
        use datafusion::execution::runtime_env::RuntimeEnvBuilder;
        use datafusion::prelude::{SessionConfig, SessionContext};
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(64 << 20, 2 << 20);
        cfg.spill_bytes = 256 << 20;
        let budget = Budget::new(&cfg, Some(dir.path().join("spill")));
        let run = |budget: &Budget| {
            let mut runtime = RuntimeEnvBuilder::new()
                .with_memory_pool(budget.query_pool())
                .build()
                .unwrap();
            runtime.disk_manager = budget.disk();
            let config = SessionConfig::new().with_sort_spill_reservation_bytes(256 << 10);
            SessionContext::new_with_config_rt(config, Arc::new(runtime))
        };
        let sql = "SELECT value FROM range(1000000) ORDER BY value * 7919 % 1000003";
        let batches = run(&budget)
            .sql(sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(
            batches.iter().map(|b| b.num_rows()).sum::<usize>(),
            1_000_000
        );
        assert!(budget.disk().used_disk_space() == 0, "spill files removed");
        assert_eq!(budget.memory_in_use(), 0);
        // The same sort with spilling off fails on the limit.
        cfg.spill_bytes = 0;
        let strict = Budget::new(&cfg, Some(dir.path().join("spill")));
        let err = run(&strict)
            .sql(sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("Memory Exhausted"), "{err}");
    }

    #[test]
    fn spilling_is_bounded_and_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let spill = dir.path().join("spill");
        std::fs::create_dir_all(&spill).unwrap();
        std::fs::write(spill.join("left-by-a-crash"), b"x").unwrap();
        let mut cfg = config(1000, 1000);
        cfg.spill_bytes = 4096;
        let budget = Budget::new(&cfg, Some(spill.clone()));
        assert!(!spill.join("left-by-a-crash").exists());
        assert!(budget.disk().tmp_files_enabled());
        assert_eq!(budget.disk().max_temp_directory_size(), 4096);
        cfg.spill_bytes = 0;
        assert!(!Budget::new(&cfg, Some(spill)).disk().tmp_files_enabled());
    }
}
