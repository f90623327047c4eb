//! The tenant's file catalog: which Parquet files are live, their time bounds, each table's
//! schema and how far its WAL is persisted. Each change writes a new, complete manifest version
//! with a create-only put (`PutMode::Create`), so two processes can never both commit version N:
//! the loser reloads the winner's manifest, re-applies its change and tries N+1. This works the
//! same on a local folder and on S3 with conditional puts; readers only ever see whole versions.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::StorageError;
use super::paths::{CATALOG_PREFIX, catalog_path, catalog_version};
use super::schema::TableSchema;

/// How many old manifest versions stay behind for debugging before they are deleted.
const KEEP_VERSIONS: u64 = 5;
const MAX_COMMIT_ATTEMPTS: usize = 16;

/// One live Parquet file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParquetFile {
    pub path: String,
    pub min_time: i64,
    pub max_time: i64,
    pub rows: u64,
    pub size: u64,
    /// The rollups whose files already hold this file's rows (a rollup's files hold exactly the
    /// rows of the raw files naming it, so queries read the others raw).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rolled_up: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TableManifest {
    pub schema: TableSchema,
    pub files: Vec<ParquetFile>,
    /// Every WAL segment numbered up to here is in `files`; replay skips them. Written by
    /// single-node versions (one WAL per bucket); kept, never raised, as the mark of a WAL that
    /// has none of its own in `wal_persisted_by` yet.
    pub wal_persisted_through: u64,
    /// The same mark per WAL (a data dir's `WAL_ID`): several nodes share one catalog, each
    /// with its own WAL numbering, so one node's mark must never skip another's segments.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub wal_persisted_by: BTreeMap<String, u64>,
    /// Each rollup's files, by rollup name (see `storage::rollup`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rollups: BTreeMap<String, Vec<ParquetFile>>,
}

impl TableManifest {
    /// How far the WAL `wal` is persisted.
    pub fn persisted_through(&self, wal: &str) -> u64 {
        self.wal_persisted_by
            .get(wal)
            .copied()
            .unwrap_or(self.wal_persisted_through)
    }
}

/// A file dropped from the catalog, to be deleted once no planned query can still read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDelete {
    pub path: String,
    pub after_ms: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u64,
    pub tables: BTreeMap<String, TableManifest>,
    pub pending_deletes: Vec<PendingDelete>,
}

/// One change to the catalog. Changes are re-applied to the newest manifest when a commit
/// races with another writer, so each must make sense on any later version.
#[derive(Debug, Clone)]
pub enum CatalogChange {
    AddFiles {
        table: String,
        schema: TableSchema,
        files: Vec<ParquetFile>,
        /// The WAL the files came from and how far it is now persisted (0: not from a WAL).
        wal: String,
        wal_persisted_through: u64,
        /// How far the committer believes `wal` is persisted; when the catalog says otherwise,
        /// another node persisted those rows (it adopted the stream) and the commit is refused.
        expect_persisted: Option<u64>,
    },
    RemoveFiles {
        table: String,
        paths: Vec<String>,
        delete_after_ms: i64,
    },
    Deleted {
        paths: Vec<String>,
    },
    /// Adds `files` to `rollup` and marks the raw files `covers` as held by it — only if every
    /// one is still live and not yet covered (a compaction may have replaced it meanwhile);
    /// otherwise the new files are dropped, so no raw row is ever counted twice.
    AddRollup {
        table: String,
        rollup: String,
        covers: Vec<String>,
        files: Vec<ParquetFile>,
        delete_after_ms: i64,
    },
    RemoveRollupFiles {
        table: String,
        rollup: String,
        paths: Vec<String>,
        delete_after_ms: i64,
    },
    /// Drops a rollup no longer declared: its files go, and no raw file claims it any more.
    RemoveRollup {
        table: String,
        rollup: String,
        delete_after_ms: i64,
    },
}

impl Manifest {
    fn apply(&self, changes: &[CatalogChange]) -> Result<Manifest, StorageError> {
        let mut next = self.clone();
        next.version = self.version + 1;
        for change in changes {
            match change {
                CatalogChange::AddFiles {
                    table,
                    schema,
                    files,
                    wal,
                    wal_persisted_through,
                    expect_persisted,
                } => {
                    let t = next.tables.entry(table.clone()).or_default();
                    if let Some(expected) = expect_persisted
                        && t.persisted_through(wal) != *expected
                    {
                        return Err(StorageError::Fenced {
                            message: format!(
                                "table {table}: WAL {wal} is persisted through {} in the catalog, \
                                 not {expected}: another node adopted its rows",
                                t.persisted_through(wal)
                            ),
                        });
                    }
                    // The writer's schema is a superset of what it read; keep the larger one.
                    if schema.columns().len() >= t.schema.columns().len() {
                        t.schema = schema.clone();
                    }
                    t.files.extend(files.iter().cloned());
                    if *wal_persisted_through > 0 {
                        let mark = t.wal_persisted_by.entry(wal.clone()).or_default();
                        *mark = (*mark).max(*wal_persisted_through);
                    }
                }
                CatalogChange::RemoveFiles {
                    table,
                    paths,
                    delete_after_ms,
                } => {
                    if let Some(t) = next.tables.get_mut(table) {
                        t.files.retain(|f| !paths.contains(&f.path));
                    }
                    next.pending_deletes
                        .extend(paths.iter().map(|p| PendingDelete {
                            path: p.clone(),
                            after_ms: *delete_after_ms,
                        }));
                }
                CatalogChange::Deleted { paths } => {
                    next.pending_deletes.retain(|d| !paths.contains(&d.path));
                }
                CatalogChange::AddRollup {
                    table,
                    rollup,
                    covers,
                    files,
                    delete_after_ms,
                } => next.add_rollup(table, rollup, covers, files, *delete_after_ms),
                CatalogChange::RemoveRollupFiles {
                    table,
                    rollup,
                    paths,
                    delete_after_ms,
                } => {
                    if let Some(files) = next
                        .tables
                        .get_mut(table)
                        .and_then(|t| t.rollups.get_mut(rollup))
                    {
                        files.retain(|f| !paths.contains(&f.path));
                    }
                    next.delete_later(paths.iter().cloned(), *delete_after_ms);
                }
                CatalogChange::RemoveRollup {
                    table,
                    rollup,
                    delete_after_ms,
                } => {
                    let Some(t) = next.tables.get_mut(table) else {
                        continue;
                    };
                    let dropped = t.rollups.remove(rollup).unwrap_or_default();
                    for f in &mut t.files {
                        f.rolled_up.retain(|r| r != rollup);
                    }
                    next.delete_later(dropped.into_iter().map(|f| f.path), *delete_after_ms);
                }
            }
        }
        Ok(next)
    }
}

impl Manifest {
    fn add_rollup(
        &mut self,
        table: &str,
        rollup: &str,
        covers: &[String],
        files: &[ParquetFile],
        delete_after_ms: i64,
    ) {
        let t = self.tables.entry(table.to_string()).or_default();
        let coverable = covers.iter().all(|path| {
            t.files
                .iter()
                .any(|f| &f.path == path && !f.rolled_up.iter().any(|r| r == rollup))
        });
        if !coverable {
            self.delete_later(files.iter().map(|f| f.path.clone()), delete_after_ms);
            return;
        }
        for f in &mut t.files {
            if covers.contains(&f.path) {
                f.rolled_up.push(rollup.to_string());
            }
        }
        t.rollups
            .entry(rollup.to_string())
            .or_default()
            .extend(files.iter().cloned());
    }

    fn delete_later(&mut self, paths: impl Iterator<Item = String>, after_ms: i64) {
        self.pending_deletes
            .extend(paths.map(|path| PendingDelete { path, after_ms }));
    }
}

/// The catalog of one tenant, over that tenant's (prefixed) object store.
#[derive(Debug)]
pub struct Catalog {
    store: Arc<dyn ObjectStore>,
    current: Mutex<Arc<Manifest>>,
}

impl Catalog {
    pub async fn load(store: Arc<dyn ObjectStore>) -> Result<Self, StorageError> {
        let manifest = load_latest(store.as_ref()).await?;
        Ok(Self {
            store,
            current: Mutex::new(Arc::new(manifest)),
        })
    }

    pub async fn current(&self) -> Arc<Manifest> {
        self.current.lock().await.clone()
    }

    /// The newest version in the store (other nodes commit too), loaded if it is newer.
    pub async fn refresh(&self) -> Result<Arc<Manifest>, StorageError> {
        let newest = newest_version(self.store.as_ref()).await?;
        let mut current = self.current.lock().await;
        if newest.is_some_and(|v| v > current.version) {
            *current = Arc::new(load_latest(self.store.as_ref()).await?);
        }
        Ok(current.clone())
    }

    /// Atomically applies `changes` as the next manifest version and returns it.
    pub async fn commit(&self, changes: &[CatalogChange]) -> Result<Arc<Manifest>, StorageError> {
        let mut current = self.current.lock().await;
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            let next = current.apply(changes)?;
            let body = serde_json::to_vec(&next).map_err(|e| StorageError::Catalog {
                message: format!("cannot encode manifest: {e}"),
            })?;
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match self
                .store
                .put_opts(&catalog_path(next.version), PutPayload::from(body), opts)
                .await
            {
                Ok(_) => {
                    let next = Arc::new(next);
                    *current = next.clone();
                    if next.version > KEEP_VERSIONS {
                        // Best effort: an old version left behind is harmless.
                        let old = catalog_path(next.version - KEEP_VERSIONS);
                        let _ = self.store.delete(&old).await;
                    }
                    return Ok(next);
                }
                Err(object_store::Error::AlreadyExists { .. }) => {
                    tracing::warn!(
                        version = next.version,
                        "catalog version taken by another writer; reloading"
                    );
                    *current = Arc::new(load_latest(self.store.as_ref()).await?);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StorageError::Catalog {
            message: format!("gave up after {MAX_COMMIT_ATTEMPTS} conflicting commits"),
        })
    }
}

async fn newest_version(store: &dyn ObjectStore) -> Result<Option<u64>, StorageError> {
    let prefix = object_store::path::Path::from(CATALOG_PREFIX);
    let metas: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
    Ok(metas
        .iter()
        .filter_map(|m| catalog_version(&m.location))
        .max())
}

async fn load_latest(store: &dyn ObjectStore) -> Result<Manifest, StorageError> {
    let Some(latest) = newest_version(store).await? else {
        return Ok(Manifest::default());
    };
    let bytes = store.get(&catalog_path(latest)).await?.bytes().await?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| StorageError::Catalog {
        message: format!("manifest version {latest} is unreadable: {e}"),
    })?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn file(path: &str) -> ParquetFile {
        ParquetFile {
            path: path.into(),
            min_time: 0,
            max_time: 10,
            rows: 5,
            size: 100,
            rolled_up: vec![],
        }
    }

    fn add(path: &str, through: u64) -> CatalogChange {
        add_from("node-a", path, through)
    }

    fn add_from(wal: &str, path: &str, through: u64) -> CatalogChange {
        add_expecting(wal, path, through, None)
    }

    fn add_expecting(wal: &str, path: &str, through: u64, expected: Option<u64>) -> CatalogChange {
        CatalogChange::AddFiles {
            table: "cpu".into(),
            schema: TableSchema::default(),
            files: vec![file(path)],
            wal: wal.into(),
            wal_persisted_through: through,
            expect_persisted: expected,
        }
    }

    /// Two nodes' WALs number their segments each from 1: one node's flush must not mark the
    /// other's unflushed segments as persisted (its restart would skip and delete them).
    #[tokio::test]
    async fn each_wal_has_its_own_persisted_mark() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let catalog = Catalog::load(store).await.unwrap();
        catalog.commit(&[add_from("a", "f1", 7)]).await.unwrap();
        let m = catalog.commit(&[add_from("b", "f2", 2)]).await.unwrap();
        let t = &m.tables["cpu"];
        assert_eq!((t.persisted_through("a"), t.persisted_through("b")), (7, 2));
        assert_eq!(t.persisted_through("c"), 0, "a WAL never flushed");
        // A compaction (from no WAL) moves no mark.
        let m = catalog.commit(&[add_from("", "f3", 0)]).await.unwrap();
        assert_eq!(m.tables["cpu"].wal_persisted_by.len(), 2);
        // A catalog written by a single-node version: its mark stands for a WAL with none.
        let legacy = TableManifest {
            wal_persisted_through: 5,
            ..Default::default()
        };
        assert_eq!(legacy.persisted_through("old-node"), 5);
    }

    /// A node adopted a stream whose owner was paused; the owner, resumed, must not commit the
    /// same rows again.
    #[tokio::test]
    async fn a_flush_of_rows_another_node_persisted_is_refused() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let owner = Catalog::load(store.clone()).await.unwrap();
        let adopter = Catalog::load(store).await.unwrap();
        let expecting =
            |path: &str, through, expected| add_expecting("s1", path, through, Some(expected));
        owner.commit(&[expecting("f1", 3, 0)]).await.unwrap();
        adopter.refresh().await.unwrap();
        adopter.commit(&[expecting("f2", 9, 3)]).await.unwrap();
        let refused = owner.commit(&[expecting("f3", 9, 3)]).await;
        assert!(
            matches!(refused, Err(StorageError::Fenced { .. })),
            "{refused:?}"
        );
        let m = owner.refresh().await.unwrap();
        let paths: Vec<_> = m.tables["cpu"]
            .files
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(paths, ["f1", "f2"]);
        assert_eq!(m.tables["cpu"].persisted_through("s1"), 9);
    }

    #[tokio::test]
    async fn commits_survive_reload() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let catalog = Catalog::load(store.clone()).await.unwrap();
        catalog.commit(&[add("a", 1)]).await.unwrap();
        catalog.commit(&[add("b", 2)]).await.unwrap();
        let reloaded = Catalog::load(store).await.unwrap().current().await;
        assert_eq!(reloaded.version, 2);
        let t = &reloaded.tables["cpu"];
        assert_eq!(t.files.len(), 2);
        assert_eq!(t.persisted_through("node-a"), 2);
    }

    #[tokio::test]
    async fn two_writers_never_lose_a_change() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let one = Catalog::load(store.clone()).await.unwrap();
        let two = Catalog::load(store.clone()).await.unwrap();
        one.commit(&[add("a", 1)]).await.unwrap();
        // `two` still believes version 0 is current; its create-only put of version 1 must fail
        // and be retried on top of `one`'s change.
        let v = two.commit(&[add("b", 0)]).await.unwrap();
        assert_eq!(v.version, 2);
        let files: Vec<_> = v.tables["cpu"]
            .files
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(files, ["a", "b"]);
    }

    #[tokio::test]
    async fn removed_files_wait_as_pending_deletes() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let catalog = Catalog::load(store).await.unwrap();
        catalog.commit(&[add("a", 1), add("b", 1)]).await.unwrap();
        let m = catalog
            .commit(&[CatalogChange::RemoveFiles {
                table: "cpu".into(),
                paths: vec!["a".into()],
                delete_after_ms: 99,
            }])
            .await
            .unwrap();
        assert_eq!(m.tables["cpu"].files.len(), 1);
        assert_eq!(m.pending_deletes[0].path, "a");
        let m = catalog
            .commit(&[CatalogChange::Deleted {
                paths: vec!["a".into()],
            }])
            .await
            .unwrap();
        assert!(m.pending_deletes.is_empty());
    }
}
