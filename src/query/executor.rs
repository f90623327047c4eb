//! Queries run on threads of their own: a separate Tokio runtime, so a few heavy sorts cannot
//! occupy the workers that answer `/healthz`, pages and writes (the OS shares the cores between
//! the two). A query's batches reach the caller through a small channel; the deadline covers
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
    pub fn new(threads: usize) -> Self {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
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
