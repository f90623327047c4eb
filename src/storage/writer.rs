//! The WAL writer: one thread that owns every table's active WAL segment. Requests queue their
//! encoded records; the thread takes everything queued, appends it, syncs each touched segment
//! once (group commit) and only then makes the rows visible and answers the requests. Rotation
//! for a flush goes through the same queue, so it sees exactly the rows whose records precede it.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use arrow::record_batch::RecordBatch;
use tokio::sync::oneshot;

use super::StorageError;
use super::table::Table;
use super::wal::ActiveSegment;

/// How many queued commands one group commit takes at most, so a flood of writers still gets
/// answers in bounded time.
const MAX_GROUP: usize = 512;

enum Command {
    Append {
        table: Arc<Table>,
        record: Vec<u8>,
        batch: RecordBatch,
        done: oneshot::Sender<Result<(), StorageError>>,
    },
    Rotate {
        table: Arc<Table>,
        done: oneshot::Sender<Rotation>,
    },
}

/// Rows handed to a flush: every buffered row of the table, covered by WAL segments up to and
/// including `through_segment`.
#[derive(Debug)]
pub struct Rotation {
    pub batches: Vec<RecordBatch>,
    pub through_segment: u64,
}

/// Handle to the writer thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct WalWriter {
    tx: mpsc::Sender<Command>,
}

impl WalWriter {
    pub fn start() -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("opsboard-wal".into())
            .spawn(move || run(rx))
            .expect("spawning the WAL thread");
        (Self { tx }, handle)
    }

    /// Appends the record durably, then makes `batch` visible in the table's buffer.
    pub async fn append(
        &self,
        table: Arc<Table>,
        record: Vec<u8>,
        batch: RecordBatch,
    ) -> Result<(), StorageError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Append {
                table,
                record,
                batch,
                done,
            })
            .map_err(|_| StorageError::ShuttingDown)?;
        wait.await.map_err(|_| StorageError::ShuttingDown)?
    }

    /// Closes the table's active segment and moves its buffer into `persisting`.
    pub async fn rotate(&self, table: Arc<Table>) -> Result<Rotation, StorageError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Rotate { table, done })
            .map_err(|_| StorageError::ShuttingDown)?;
        wait.await.map_err(|_| StorageError::ShuttingDown)
    }
}

struct Pending {
    table: Arc<Table>,
    batch: RecordBatch,
    done: oneshot::Sender<Result<(), StorageError>>,
}

fn run(rx: mpsc::Receiver<Command>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(c) => group.push(c),
                Err(_) => break,
            }
        }
        let mut pending: Vec<Pending> = vec![];
        for command in group {
            match command {
                Command::Append {
                    table,
                    record,
                    batch,
                    done,
                } => match append(&table, &record) {
                    Ok(()) => pending.push(Pending { table, batch, done }),
                    Err(e) => {
                        let _ = done.send(Err(e));
                    }
                },
                Command::Rotate { table, done } => {
                    commit(std::mem::take(&mut pending));
                    let _ = done.send(rotate(&table));
                }
            }
        }
        commit(pending);
    }
}

fn append(table: &Table, record: &[u8]) -> Result<(), StorageError> {
    let mut segment = table.segment.lock();
    if segment.is_none() {
        let seq = {
            let mut inner = table.inner.lock();
            inner.next_segment += 1;
            inner.next_segment - 1
        };
        *segment = Some(ActiveSegment::create(&table.wal_dir, seq)?);
    }
    let Some(active) = segment.as_mut() else {
        unreachable!("segment opened above")
    };
    if let Err(e) = active.append(record) {
        // A partial record may sit at the end now; later records must not follow it, or replay
        // would stop at the garbage and lose them. Start a fresh segment next time.
        *segment = None;
        return Err(e.into());
    }
    Ok(())
}

/// Syncs every segment the group touched, then publishes the rows and answers the writers.
fn commit(pending: Vec<Pending>) {
    if pending.is_empty() {
        return;
    }
    // One sync per touched table, whatever the number of writes to it.
    let mut synced: Vec<(Arc<Table>, Result<(), String>)> = vec![];
    for p in &pending {
        if synced.iter().any(|(t, _)| Arc::ptr_eq(t, &p.table)) {
            continue;
        }
        let mut segment = p.table.segment.lock();
        let result = segment.as_mut().map(|s| s.sync()).unwrap_or(Ok(()));
        if result.is_err() {
            // Do not append after a failed sync: the next write opens a fresh segment.
            *segment = None;
        }
        synced.push((p.table.clone(), result.map_err(|e| e.to_string())));
    }
    for p in pending {
        let outcome = synced
            .iter()
            .find(|(t, _)| Arc::ptr_eq(t, &p.table))
            .map(|(_, r)| r.clone())
            .unwrap_or(Ok(()));
        match outcome {
            Ok(()) => {
                p.table.push_active(p.batch);
                let _ = p.done.send(Ok(()));
            }
            Err(message) => {
                let _ = p.done.send(Err(StorageError::WalSync { message }));
            }
        }
    }
}

fn rotate(table: &Table) -> Rotation {
    // Closing the segment means the next append opens a new number; everything up to the
    // current number is covered by the rows handed out here.
    table.segment.lock().take();
    let mut inner = table.inner.lock();
    let active = std::mem::take(&mut inner.active);
    inner.persisting.extend(active);
    inner.persisting_bytes += inner.active_bytes;
    inner.active_rows = 0;
    inner.active_bytes = 0;
    inner.oldest_active = None;
    Rotation {
        batches: inner.persisting.clone(),
        through_segment: inner.next_segment.saturating_sub(1),
    }
}
