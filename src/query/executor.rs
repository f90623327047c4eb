//! Queries run on threads of their own: a separate Tokio runtime, so a few heavy sorts cannot
//! occupy the workers that answer `/healthz`, pages and writes. The OS shares the cores between
//! the two, and the query threads run at a lower priority (`query.nice`): with every core busy
//! refreshing a dashboard, fifty viewers' cached answers would otherwise wait their turn behind
//! it. A query's batches reach the caller through a small channel; the deadline covers
//! every step, including waiting for a caller that stopped reading — the query then ends and
//! frees its memory and its admission.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::budget::Admission;
use super::{BatchStream, QueryError};

/// Batches buffered between the query and its caller.
const CHANNEL_BATCHES: usize = 2;

/// The runtime queries run on; stopped (without waiting) when the engine goes.
#[derive(Debug)]
pub struct Executor {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Executor {
    /// `threads` workers (0: one per core), each `nice` steps below the process's priority.
    pub fn new(threads: usize, nice: u8) -> Self {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .on_thread_start(move || lower_priority(nice))
            .thread_name("opsboard-query")
            .enable_all()
            .build()
            .expect("the query runtime's threads start");
        Self {
            runtime: Some(runtime),
        }
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("present until dropped")
            .handle()
    }

    /// Runs `start` (planning, returning the batch stream) and then the stream on the query
    /// runtime; answers with the schema and a stream of the batches as they come.
    pub async fn run<F>(
        &self,
        start: F,
        deadline: Instant,
        timeout: std::time::Duration,
        classify: Arc<dyn Fn(datafusion::error::DataFusionError) -> QueryError + Send + Sync>,
        admission: Admission,
    ) -> Result<(SchemaRef, BatchStream), QueryError>
    where
        F: Future<Output = Result<SendableRecordBatchStream, QueryError>> + Send + 'static,
    {
        let (schema_tx, schema_rx) = oneshot::channel();
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        self.handle().spawn(async move {
            let started = tokio::time::timeout_at(deadline, start).await;
            let stream = match started {
                Err(_) => {
                    let _ = schema_tx.send(Err(QueryError::Timeout(timeout)));
                    return;
                }
                Ok(Err(e)) => {
                    let _ = schema_tx.send(Err(e));
                    return;
                }
                Ok(Ok(stream)) => stream,
            };
            if schema_tx.send(Ok(stream.schema())).is_err() {
                return;
            }
            forward(stream, tx, deadline, timeout, classify).await;
            drop(admission);
        });
        let schema = schema_rx.await.map_err(|_| QueryError::Execution {
            message: "the query stopped before planning finished".into(),
        })??;
        Ok((schema, receive(rx, timeout)))
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Lowers the calling thread's CPU priority by `steps` (Linux keeps a nice value per thread;
/// raising it needs no privilege). A refusal leaves the thread as it was: slower pages under
/// load, nothing worse.
#[cfg(target_os = "linux")]
fn lower_priority(steps: u8) {
    if steps == 0 {
        return;
    }
    // SAFETY: `nice` only changes the calling thread's scheduling priority; it touches no memory.
    let now = unsafe { libc::nice(libc::c_int::from(steps)) };
    if now == -1 {
        // (-1 may also be a legitimate new value; the message is only a hint.)
        let error = std::io::Error::last_os_error();
        tracing::debug!(%error, "the query threads may keep the process's CPU priority");
    }
}

/// Elsewhere `nice` applies to the whole process (pages and writes too), so it is left alone.
#[cfg(not(target_os = "linux"))]
fn lower_priority(_steps: u8) {}

/// What the query side sends: batches, then an end or an error.
enum Message {
    Batch(RecordBatch),
    End,
    Failed(QueryError),
}

async fn forward(
    mut stream: SendableRecordBatchStream,
    tx: mpsc::Sender<Message>,
    deadline: Instant,
    timeout: std::time::Duration,
    classify: Arc<dyn Fn(datafusion::error::DataFusionError) -> QueryError + Send + Sync>,
) {
    loop {
        let message = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => Message::Failed(QueryError::Timeout(timeout)),
            Ok(None) => Message::End,
            Ok(Some(Ok(batch))) => Message::Batch(batch),
            Ok(Some(Err(e))) => Message::Failed(classify(e)),
        };
        let last = !matches!(message, Message::Batch(_));
        // A caller that stopped reading is waited for only until the deadline; then the query
        // ends here and its stream (and memory) is dropped.
        match tokio::time::timeout_at(deadline, tx.send(message)).await {
            Ok(Ok(())) if !last => continue,
            _ => return,
        }
    }
}

/// The caller's side: batches until the end; a channel closed without an end means the query
/// ran out of time while the caller was not reading.
fn receive(rx: mpsc::Receiver<Message>, timeout: std::time::Duration) -> BatchStream {
    let stream = futures::stream::unfold(Some(rx), move |state| async move {
        let mut rx = state?;
        match rx.recv().await {
            Some(Message::Batch(batch)) => Some((Ok(batch), Some(rx))),
            Some(Message::End) => None,
            Some(Message::Failed(e)) => Some((Err(e), None)),
            None => Some((Err(QueryError::Timeout(timeout)), None)),
        }
    });
    // Fused: callers may poll again after the end (the HTTP layer peeks the first batch).
    Box::pin(stream.fuse())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn own_priority() -> i32 {
        // SAFETY: reads the calling thread's nice value; touches no memory.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
    }

    #[tokio::test]
    async fn query_threads_run_below_the_callers_priority() {
        let ours = own_priority();
        let lowered = Executor::new(1, 5);
        let theirs = lowered
            .handle()
            .spawn(async { own_priority() })
            .await
            .unwrap();
        assert_eq!(theirs, (ours + 5).min(19));
        let same = Executor::new(1, 0);
        let theirs = same.handle().spawn(async { own_priority() }).await.unwrap();
        assert_eq!(theirs, ours, "0 leaves the priority alone");
        assert_eq!(own_priority(), ours, "only the query threads moved");
    }
}
