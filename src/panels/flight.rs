//! One computation per uncached answer: when several viewers ask for the same panel answer at
//! once (a dashboard's refresh after its cache entry expired, fifty browsers opening one
//! link), the first runs the query and the others wait for its answer instead of running the
//! same query beside it. A computation that fails or is abandoned (its caller went away) hands
//! nothing on: each waiter then runs its own, so errors stay the caller's own and nobody
//! waits on a query no one is running.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::watch;

/// Computations in progress, by key.
pub struct Flights<K, V> {
    running: Mutex<HashMap<K, watch::Receiver<Option<V>>>>,
    /// Callers answered by another's computation.
    shared: AtomicU64,
}

impl<K: Hash + Eq + Clone, V: Clone> Default for Flights<K, V> {
    fn default() -> Self {
        Self {
            running: Mutex::new(HashMap::new()),
            shared: AtomicU64::new(0),
        }
    }
}

/// Whether a caller computes the answer or waits for another's.
enum Turn<V> {
    Lead(watch::Sender<Option<V>>),
    Wait(watch::Receiver<Option<V>>),
}

/// Removes the leader's entry however its computation ends (answer, error, cancellation).
struct Lead<'a, K: Hash + Eq, V> {
    flights: &'a Flights<K, V>,
    key: K,
}

impl<K: Hash + Eq, V> Drop for Lead<'_, K, V> {
    fn drop(&mut self) {
        self.flights.running.lock().remove(&self.key);
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Flights<K, V> {
    /// `compute`'s answer for `key`, shared with every caller asking for `key` meanwhile.
    pub async fn run<E, F>(&self, key: K, compute: impl FnOnce() -> F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let turn = {
            let mut running = self.running.lock();
            match running.get(&key) {
                Some(answer) => Turn::Wait(answer.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    running.insert(key.clone(), rx);
                    Turn::Lead(tx)
                }
            }
        };
        match turn {
            Turn::Lead(tx) => {
                let _lead = Lead { flights: self, key };
                let answer = compute().await;
                if let Ok(value) = &answer {
                    // Nobody waiting is fine.
                    let _ = tx.send(Some(value.clone()));
                }
                answer
            }
            Turn::Wait(mut answer) => {
                let shared = match answer.wait_for(Option::is_some).await {
                    Ok(value) => value.clone(),
                    Err(_) => None,
                };
                match shared {
                    Some(value) => {
                        self.shared.fetch_add(1, Ordering::Relaxed);
                        Ok(value)
                    }
                    None => compute().await,
                }
            }
        }
    }

    /// Computations running now.
    #[cfg(test)]
    pub fn in_progress(&self) -> usize {
        self.running.lock().len()
    }

    /// Callers so far answered by another's computation.
    pub fn shared(&self) -> u64 {
        self.shared.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_callers_share_one_computation() {
        let flights = Arc::new(Flights::<u32, u64>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let callers = (0..20).map(|_| {
            let (flights, runs) = (flights.clone(), runs.clone());
            tokio::spawn(async move {
                flights
                    .run(7, || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, String>(42)
                    })
                    .await
            })
        });
        for caller in futures::future::join_all(callers).await {
            assert_eq!(caller.unwrap(), Ok(42));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.shared(), 19);
        assert_eq!(flights.in_progress(), 0);
        // Later callers compute anew (the answer's lifetime is the cache's business).
        assert_eq!(
            flights.run(7, || async { Ok::<_, String>(43) }).await,
            Ok(43)
        );
    }

    #[tokio::test]
    async fn an_error_is_the_leaders_own_and_waiters_run_their_own() {
        let flights = Arc::new(Flights::<u32, u64>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let leader = {
            let (flights, runs) = (flights.clone(), runs.clone());
            tokio::spawn(async move {
                flights
                    .run(1, || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err::<u64, _>("leader failed".to_string())
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let waiter = flights.run(1, || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(5)
        });
        assert_eq!(waiter.await, Ok(5));
        assert_eq!(leader.await.unwrap(), Err("leader failed".into()));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_abandoned_leader_does_not_strand_its_waiters() {
        let flights = Arc::new(Flights::<u32, u64>::default());
        let leader = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run(1, || async {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        Ok::<_, String>(1)
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let waiter = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run(1, || async { Ok::<_, String>(2) }).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        leader.abort();
        let answer = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter is not left hanging");
        assert_eq!(answer.unwrap(), Ok(2));
        assert_eq!(flights.in_progress(), 0);
    }
}
