//! The WAL writer: one thread that owns every table's active WAL segment. Requests queue their
//! encoded records; the thread takes everything queued, appends it, syncs each touched segment
//! once (group commit) and only then makes the rows visible and answers the requests. Rotation
//! for a flush goes through the same queue, so it sees exactly the rows whose records precede it.
//!
//! With the WAL in the object store, a group commit is one object per touched table (stored
//! side by side), and a write is answered only once its object is stored and this process still
//! holds its stream's lease.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use arrow::record_batch::RecordBatch;
use object_store::ObjectStoreExt;
use tokio::sync::oneshot;

use super::StorageError;
use super::table::Table;
use super::wal::{ActiveSegment, encode_segment};
use super::wal_objects::{WalLease, WalObject};

/// Where the writer commits: local segment files, or objects in the shared store.
#[derive(Debug, Clone)]
pub enum WalTarget {
    Local,
    Objects(ObjectTarget),
}

/// How the writer stores objects.
#[derive(Debug, Clone)]
pub struct ObjectTarget {
    /// Drives the uploads from the writer thread.
    pub runtime: tokio::runtime::Handle,
    pub lease: Arc<WalLease>,
    /// An upload not done by then fails the writes it holds (503): the store is down.
    pub put_timeout: std::time::Duration,
    /// How long the first write of a group waits for more to join it (fewer, larger objects
    /// for more latency).
    pub group_wait: std::time::Duration,
}

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
    pub fn start(target: WalTarget) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("opsboard-wal".into())
            .spawn(move || run(rx, target))
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
    /// The encoded record, kept until the group's object is built (object store only).
    record: Vec<u8>,
    done: oneshot::Sender<Result<(), StorageError>>,
}

fn run(rx: mpsc::Receiver<Command>, target: WalTarget) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        if let WalTarget::Objects(objects) = &target
            && !objects.group_wait.is_zero()
        {
            let deadline = std::time::Instant::now() + objects.group_wait;
            while group.len() < MAX_GROUP {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(left) {
                    Ok(c) => group.push(c),
                    Err(_) => break,
                }
            }
        }
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
                } => match &target {
                    WalTarget::Objects(_) => pending.push(Pending {
                        table,
                        batch,
                        record,
                        done,
                    }),
                    WalTarget::Local => match append(&table, &record) {
                        Ok(()) => pending.push(Pending {
                            table,
                            batch,
                            record: vec![],
                            done,
                        }),
                        Err(e) => {
                            let _ = done.send(Err(e));
                        }
                    },
                },
                Command::Rotate { table, done } => {
                    commit(&target, std::mem::take(&mut pending));
                    let _ = done.send(rotate(&table));
                }
            }
        }
        commit(&target, pending);
    }
}

fn commit(target: &WalTarget, pending: Vec<Pending>) {
    match target {
        WalTarget::Local => commit_local(pending),
        WalTarget::Objects(objects) => commit_objects(objects, pending),
    }
}

/// Why a group's object did not make its writes durable.
#[derive(Clone)]
enum Unstored {
    LeaseLost,
    Store(String),
}

impl Unstored {
    fn error(&self) -> StorageError {
        match self {
            Unstored::LeaseLost => StorageError::WalLeaseLost,
            Unstored::Store(message) => StorageError::WalUnavailable {
                message: message.clone(),
            },
        }
    }
}

/// Stores one object per touched table, side by side, then publishes the rows of the stored
/// ones and answers the writers.
fn commit_objects(target: &ObjectTarget, pending: Vec<Pending>) {
    if pending.is_empty() {
        return;
    }
    if !target.lease.valid() {
        for p in pending {
            let _ = p.done.send(Err(StorageError::WalLeaseLost));
        }
        return;
    }
    let mut groups: Vec<(Arc<Table>, Vec<Pending>)> = vec![];
    for p in pending {
        match groups.iter_mut().find(|(t, _)| Arc::ptr_eq(t, &p.table)) {
            Some((_, members)) => members.push(p),
            None => groups.push((p.table.clone(), vec![p])),
        }
    }
    let uploads = groups.iter().map(|(table, members)| {
        let seq = table.take_segment_number();
        let body = encode_segment(members.iter().map(|p| p.record.as_slice()));
        let wal = table.object_wal.clone();
        let timeout = target.put_timeout;
        let name = table.name.clone();
        async move {
            let Some(wal) = wal else {
                return Err(Unstored::Store(format!("table {name} has no WAL stream")));
            };
            let object = WalObject {
                stream: wal.stream.clone(),
                table: name,
                seq,
            };
            let path = object.path();
            let stored = tokio::time::timeout(timeout, wal.objects.put(&path, body.into())).await;
            let outcome = match stored {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(Unstored::Store(e.to_string())),
                Err(_) => Err(Unstored::Store(format!(
                    "storing {path} took longer than {timeout:?}"
                ))),
            };
            if outcome.is_err() {
                // It may have landed after all: unacknowledged rows must not show up later.
                // Not waited for: the store may be down, and later writes must get their
                // answer (503) in time.
                tokio::spawn(async move { wal.objects.delete(&path).await });
            }
            outcome
        }
    });
    let stored = target.runtime.block_on(futures::future::join_all(uploads));
    for ((table, members), outcome) in groups.into_iter().zip(stored) {
        // Checked after the upload: a lease that ran out meanwhile may be adopted already.
        let outcome = outcome.and_then(|()| {
            if target.lease.valid() {
                Ok(())
            } else {
                Err(Unstored::LeaseLost)
            }
        });
        for p in members {
            match &outcome {
                Ok(()) => {
                    table.push_active(p.batch);
                    let _ = p.done.send(Ok(()));
                }
                Err(why) => {
                    let _ = p.done.send(Err(why.error()));
                }
            }
        }
    }
}

fn append(table: &Table, record: &[u8]) -> Result<(), StorageError> {
    let mut segment = table.segment.lock();
    if segment.is_none() {
        let seq = table.take_segment_number();
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
fn commit_local(pending: Vec<Pending>) {
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
