//! The ingest share of the memory budget: Arrow bytes buffered in all tables of all tenants
//! (rows not yet in Parquet, including those being flushed). Writers check it before they
//! append: over the limit they flush their own table and wait (bounded) for flushes to bring
//! the total down, and only then are refused with a retry hint — buffers never grow without
//! bound, and nothing is acknowledged that is not in the WAL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
