//! Answers that stay open (event streams, exports): at most `http.max_streams_per_user` per
//! user or key, and each asks again every `http.stream_recheck` whether its caller may still
//! read the tenant — a logout, an expired session, a revoked key or a removed role ends the
//! stream then, instead of never (an export with an error, so it cannot pass for complete).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use parking_lot::Mutex;

use super::AppState;
use super::access::Caller;
use super::error::ApiError;
use crate::auth::{Auth, Need};

/// Open streams per caller.
#[derive(Debug, Default)]
pub struct StreamCounts {
    open: Mutex<HashMap<String, usize>>,
}

/// One open stream's place; given back when the stream is dropped.
pub struct StreamSlot {
    counts: Arc<StreamCounts>,
    who: String,
}

impl StreamCounts {
    pub fn acquire(self: &Arc<Self>, who: &str, limit: usize) -> Result<StreamSlot, ApiError> {
        let mut open = self.open.lock();
        let n = open.entry(who.to_string()).or_default();
        if *n >= limit {
            return Err(ApiError::TooManyStreams { limit });
        }
        *n += 1;
        Ok(StreamSlot {
            counts: self.clone(),
            who: who.to_string(),
        })
    }

    #[cfg(test)]
    fn open(&self, who: &str) -> usize {
        self.open.lock().get(who).copied().unwrap_or(0)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock();
        if let Some(n) = open.get_mut(&self.who) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.who);
            }
        }
    }
}

/// Who a long-lived answer is for, how often to ask again, and its place (if it takes one).
pub struct Recheck {
    /// Held for its place: given back when the stream is dropped.
    _slot: Option<StreamSlot>,
    pub auth: Arc<Auth>,
    pub caller: Caller,
    pub tenant: String,
    pub every: Duration,
}

impl Recheck {
    /// For `caller` reading `tenant`, with the server's `http.stream_recheck`; `slot` counts
    /// it against `http.max_streams_per_user`.
    pub fn new(
        state: &AppState,
        caller: &Caller,
        tenant: &str,
        slot: bool,
    ) -> Result<Self, ApiError> {
        let slot = match slot {
            true => Some(
                state
                    .streams
                    .acquire(&caller.actor().name, state.config.http.max_streams_per_user)?,
            ),
            false => None,
        };
        Ok(Self {
            _slot: slot,
            auth: state.auth.clone(),
            caller: caller.clone(),
            tenant: tenant.to_string(),
            every: state.config.http.stream_recheck.0,
        })
    }
}

/// `stream`, ended once its caller may no longer read the tenant (asked every
/// `recheck.every`); `withdrawn` is its last item then — an error for downloads, so a cut-off
/// file is never mistaken for a whole one.
pub fn rechecked<S>(
    stream: S,
    recheck: Recheck,
    withdrawn: Option<S::Item>,
) -> impl Stream<Item = S::Item> + Send
where
    S: Stream + Send + Unpin + 'static,
    S::Item: Send,
{
    let every = recheck.every;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = (stream, tick, recheck, withdrawn);
    futures::stream::unfold(Some(state), |state| async move {
        let (mut stream, mut tick, recheck, mut withdrawn) = state?;
        loop {
            tokio::select! {
                item = stream.next() => {
                    let item = item?;
                    return Some((item, Some((stream, tick, recheck, withdrawn))));
                }
                _ = tick.tick() => {
                    if !may_still_read(&recheck.auth, &recheck.caller, &recheck.tenant).await {
                        tracing::info!(tenant = %recheck.tenant, caller = %recheck.caller.actor().name, "stream ended: access withdrawn");
                        return withdrawn.take().map(|last| (last, None));
                    }
                }
            }
        }
    })
    // Callers may poll again after the end (the HTTP layer peeks the first batch).
    .fuse()
}

async fn may_still_read(auth: &Auth, caller: &Caller, tenant: &str) -> bool {
    let Some(principal) = &caller.principal else {
        // Anonymous access is a property of the route, not of a caller: nothing to withdraw.
        return true;
    };
    match auth.recheck(principal).await {
        Ok(Some(now)) => now.allows(tenant, Need::Read),
        Ok(None) => false,
        // The database is unreachable for a moment: keep the stream, ask again next time.
        Err(e) => {
            tracing::warn!("event stream re-check failed: {e}");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_caller_and_given_back() {
        let counts = Arc::new(StreamCounts::default());
        let a = counts.acquire("ana", 2).unwrap();
        let b = counts.acquire("ana", 2).unwrap();
        let err = counts.acquire("ana", 2).err().unwrap();
        assert!(err.to_string().contains("at most 2"), "{err}");
        let _other = counts.acquire("bo", 2).unwrap();
        drop(a);
        assert_eq!(counts.open("ana"), 1);
        let _c = counts.acquire("ana", 2).unwrap();
        drop(b);
        assert_eq!(counts.open("ana"), 1);
    }
}
