//! The ingest share of the memory budget: Arrow bytes buffered in all tables of all tenants
//! (rows not yet in Parquet, including those being flushed). Writers check it before they
//! append: over the limit they flush their own table and wait (bounded) for flushes to bring
//! the total down, and only then are refused with a retry hint — buffers never grow without
//! bound, and nothing is acknowledged that is not in the WAL. A flush makes no sorted copy of
//! the buffer (see `persist`); the merge of flushes and compactions draws its working memory
//! from the same share, so writers feel a heavy compaction as pressure instead of the process
//! growing past the budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use datafusion::execution::memory_pool::{MemoryPool, MemoryReservation};

use tokio::sync::Notify;

#[derive(Debug)]
pub struct BufferBudget {
    limit: usize,
    used: AtomicUsize,
    released: Notify,
}

impl BufferBudget {
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            used: AtomicUsize::new(0),
            released: Notify::new(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Over the limit: writers wait.
    pub fn full(&self) -> bool {
        self.used() >= self.limit
    }

    /// Over three quarters: the flush loop flushes every buffer, not only the due ones.
    pub fn pressed(&self) -> bool {
        self.used() >= self.limit / 4 * 3
    }

    pub(super) fn take(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(super) fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(bytes))
            });
        self.released.notify_waiters();
    }

    /// Waits until there is room, at most `wait`; false if there still is none.
    pub async fn room(&self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let released = self.released.notified();
            if !self.full() {
                return true;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return !self.full();
            }
        }
    }
}

/// The budget as a DataFusion memory pool, for the merge of flushes and compactions. It never
/// refuses: a flush that failed for want of memory would keep the buffers full; the merge's
/// needs are bounded by design (a batch per input), and what it holds pushes writers back.
#[derive(Debug)]
pub(super) struct WorkingMemory {
    budget: Arc<BufferBudget>,
    reserved: AtomicUsize,
}

impl WorkingMemory {
    pub(super) fn new(budget: Arc<BufferBudget>) -> Self {
        Self {
            budget,
            reserved: AtomicUsize::new(0),
        }
    }
}

impl std::fmt::Display for WorkingMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "flush and compaction working memory")
    }
}

impl MemoryPool for WorkingMemory {
    fn name(&self) -> &str {
        "flush_and_compaction"
    }

    fn grow(&self, _reservation: &MemoryReservation, additional: usize) {
        self.reserved.fetch_add(additional, Ordering::Relaxed);
        self.budget.take(additional);
    }

    fn shrink(&self, _reservation: &MemoryReservation, shrink: usize) {
        self.reserved.fetch_sub(shrink, Ordering::Relaxed);
        self.budget.release(shrink);
    }

    fn try_grow(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
    ) -> datafusion::error::Result<()> {
        self.grow(reservation, additional);
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.reserved.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_merge_draws_on_the_buffers_share() {
        let budget = Arc::new(BufferBudget::new(100));
        let pool: Arc<dyn MemoryPool> = Arc::new(WorkingMemory::new(budget.clone()));
        let merge =
            datafusion::execution::memory_pool::MemoryConsumer::new("merge").register(&pool);
        merge.try_grow(150).unwrap();
        assert!(budget.full(), "a merge never fails, but writers feel it");
        merge.shrink(100);
        assert_eq!((budget.used(), pool.reserved()), (50, 50));
        drop(merge);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn writers_wait_for_room_and_give_up_after_their_wait() {
        let budget = Arc::new(BufferBudget::new(100));
        budget.take(80);
        assert!(budget.room(Duration::from_millis(1)).await);
        assert!(budget.pressed() && !budget.full());
        budget.take(40);
        assert!(budget.full());
        assert!(
            !budget.room(Duration::from_millis(20)).await,
            "nobody flushed"
        );
        let flusher = budget.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            flusher.release(60);
        });
        assert!(
            budget.room(Duration::from_secs(5)).await,
            "a flush made room"
        );
        assert_eq!(budget.used(), 60);
        budget.release(1_000);
        assert_eq!(budget.used(), 0, "never below zero");
    }
}
