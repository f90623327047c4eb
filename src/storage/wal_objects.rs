//! The WAL in the object store, for nodes that share a bucket (`storage.wal: object_store`).
//! Each process writes its own stream, `{tenant}/_wal/{stream}/{table}/{seq}.wal`: one object
//! per table per group commit, holding the same framed records as a local segment. A write is
//! acknowledged once its object is stored, so a node that vanishes loses no acknowledged row:
//! every node reads the other streams' objects (their rows are visible everywhere within
//! `storage.wal_follow_interval`), and when a stream's lease runs out another node persists
//! what is left of it ([`super::TenantStore::adopt`]).
//!
//! A stream is named afresh at every start, so a restarted node never appends to a stream
//! another node may be adopting. The lease that lets a process acknowledge writes lives in the
//! central database (the server keeps it, see `cluster`); the storage layer only holds its
//! state here, in [`WalLease`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;

use super::StorageError;
use super::wal::decode_segment;

/// Under the tenant's prefix; a table name cannot start with `_`, so no table's files are here.
pub const WAL_PREFIX: &str = "_wal";

/// One stream's place in a tenant's object store.
#[derive(Debug, Clone)]
pub struct ObjectWal {
    /// Scoped to the tenant.
    pub objects: Arc<dyn ObjectStore>,
    pub stream: String,
}

/// One WAL object: `seq` numbers a stream's objects of one table in commit order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WalObject {
    pub stream: String,
    pub table: String,
    pub seq: u64,
}

impl WalObject {
    pub fn path(&self) -> Path {
        Path::from(format!(
            "{WAL_PREFIX}/{}/{}/{:020}.wal",
            self.stream, self.table, self.seq
        ))
    }

    fn parse(path: &Path) -> Option<Self> {
        let parts: Vec<_> = path.parts().collect();
        let [prefix, stream, table, file] = parts.as_slice() else {
            return None;
        };
        if prefix.as_ref() != WAL_PREFIX {
            return None;
        }
        let seq = file.as_ref().strip_suffix(".wal")?.parse().ok()?;
        Some(Self {
            stream: stream.as_ref().to_string(),
            table: table.as_ref().to_string(),
            seq,
        })
    }
}

/// The WAL objects of one stream (or all streams), sorted by stream, table and number.
pub async fn list(
    objects: &dyn ObjectStore,
    stream: Option<&str>,
) -> Result<Vec<WalObject>, StorageError> {
    let prefix = match stream {
        Some(stream) => Path::from(format!("{WAL_PREFIX}/{stream}")),
        None => Path::from(WAL_PREFIX),
    };
    let metas: Vec<_> = objects.list(Some(&prefix)).try_collect().await?;
    let mut found: Vec<WalObject> = metas
        .iter()
        .filter_map(|m| WalObject::parse(&m.location))
        .collect();
    found.sort();
    Ok(found)
}

/// The rows of one object; `None` when it is gone (persisted and deleted meanwhile). An object
/// is stored whole or not at all, so a record that does not decode is an error, not a tail.
pub async fn read(
    objects: &dyn ObjectStore,
    object: &WalObject,
) -> Result<Option<Vec<RecordBatch>>, StorageError> {
    let path = object.path();
    let bytes = match objects.get(&path).await {
        Ok(got) => got.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let replay = decode_segment(&bytes);
    if let Some((offset, reason)) = replay.torn_at {
        return Err(StorageError::Internal {
            message: format!("WAL object {path} is damaged at byte {offset}: {reason}"),
        });
    }
    Ok(Some(replay.batches))
}

/// Deletes `stream`'s objects of `table` numbered up to `through` (they are in Parquet now).
pub async fn delete_through(
    objects: &dyn ObjectStore,
    stream: &str,
    table: &str,
    through: u64,
) -> Result<(), StorageError> {
    let prefix = format!("{stream}/{table}");
    for object in list(objects, Some(&prefix)).await? {
        if object.table == table && object.seq <= through {
            match objects.delete(&object.path()).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// A stream name: 16 random hex digits.
pub fn new_stream_id() -> Result<String, StorageError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| StorageError::Internal {
        message: format!("no randomness for a WAL stream name: {e}"),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Whether this process may acknowledge writes into its stream: until `until_ms`, as long as
/// its lease keeps the epoch it first had. A lease that changed hands (another node adopted the
/// stream, or took it while this node could not renew) fences the process for good: its
/// buffered rows may be in Parquet already, so it must not write or flush them again.
#[derive(Debug, Default)]
pub struct WalLease {
    until_ms: AtomicI64,
    epoch: AtomicI64,
    fenced: AtomicBool,
}

/// What `/healthz` says of the stream.
#[derive(Debug, Clone, Serialize)]
pub struct WalLeaseState {
    pub stream: String,
    pub epoch: i64,
    pub held: bool,
    pub fenced: bool,
}

impl WalLease {
    /// The lease was taken or renewed with `epoch`, valid until `until_ms`.
    pub fn renewed(&self, epoch: i64, until_ms: i64) {
        let first = self
            .epoch
            .compare_exchange(0, epoch, Ordering::AcqRel, Ordering::Acquire);
        match first {
            Ok(_) => {}
            Err(known) if known == epoch => {}
            Err(known) => {
                tracing::error!(
                    known,
                    epoch,
                    "this node's WAL lease changed hands; it stops writing"
                );
                self.fence();
                return;
            }
        }
        self.until_ms.store(until_ms, Ordering::Release);
    }

    pub fn fence(&self) {
        self.fenced.store(true, Ordering::Release);
    }

    pub fn fenced(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    /// May a write be acknowledged now?
    pub fn valid(&self) -> bool {
        !self.fenced() && now_ms() < self.until_ms.load(Ordering::Acquire)
    }

    pub fn state(&self, stream: &str) -> WalLeaseState {
        WalLeaseState {
            stream: stream.to_string(),
            epoch: self.epoch.load(Ordering::Acquire),
            held: self.valid(),
            fenced: self.fenced(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_round_trip() {
        let object = WalObject {
            stream: "00ff".into(),
            table: "cpu".into(),
            seq: 42,
        };
        assert_eq!(
            object.path().to_string(),
            "_wal/00ff/cpu/00000000000000000042.wal"
        );
        assert_eq!(WalObject::parse(&object.path()), Some(object));
        assert_eq!(
            WalObject::parse(&Path::from("cpu/2024-01-01/x.parquet")),
            None
        );
        assert_eq!(WalObject::parse(&Path::from("_wal/s/cpu/x.wal")), None);
    }

    #[test]
    fn a_lease_that_changed_hands_fences_for_good() {
        let lease = WalLease::default();
        assert!(
            !lease.valid(),
            "nothing is acknowledged before the first lease"
        );
        lease.renewed(3, now_ms() + 10_000);
        assert!(lease.valid());
        lease.renewed(3, now_ms() + 10_000);
        assert!(lease.valid());
        lease.renewed(5, now_ms() + 10_000);
        assert!(!lease.valid() && lease.fenced());
        lease.renewed(5, now_ms() + 10_000);
        assert!(!lease.valid(), "fencing is not undone by a later renewal");
    }

    #[test]
    fn an_expired_lease_acknowledges_nothing() {
        let lease = WalLease::default();
        lease.renewed(1, now_ms() - 1);
        assert!(!lease.valid());
        assert!(!lease.fenced());
    }
}
