//! Per-tenant tables: WAL → in-memory Arrow buffer → Parquet on object_store, with an
//! atomically versioned file catalog. `ingest` hands decoded RecordBatches to
//! [`TenantStore::write`]; `query` reads [`Table::snapshot`]s. Nothing here knows about panels or
//! HTTP, and nothing here reads YAML: each tenant's table settings (declared schemas,
//! retention) are pushed in by the live configuration on every reload
//! ([`TenantStore::apply_settings`]).

mod attachment_gc;
mod attachments;
mod buffers;
mod catalog;
mod error;
mod file_cache;
mod follow;
mod footprint;
mod last;
mod last_read;
mod last_snapshot;
mod maintenance;
mod merge;
mod paths;
mod persist;
pub mod rollup;
mod rollup_upkeep;
mod schema;
mod table;
mod tenant;
mod wal;
mod wal_objects;
mod writer;

pub use attachments::{AttachmentInfo, attachment_id, is_attachment_id};
pub use buffers::BufferBudget;
pub use catalog::{Manifest, ParquetFile};
pub use error::StorageError;
pub use file_cache::FileCache;
pub use maintenance::MaintenanceReport;
pub use schema::align_batch;
pub use schema::{ColumnKind, FieldType, TIME_COLUMN, TableSchema, tag_type, time_type};
pub use table::{Table, TableSnapshot, TableStats};
pub use tenant::{PersistStats, TenantStore};
pub use wal_objects::{WalLease, WalLeaseState};

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use parking_lot::RwLock;

use crate::config::StorageConfig;
use writer::{ObjectTarget, WalTarget, WalWriter};

/// Whether this process may write. The CLI's `query` opens read-only so it can run beside a
/// live server: it replays the WAL into memory but never cuts, creates or deletes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    ReadWrite,
    ReadOnly,
}

/// All tenants' storage under one data dir and one object store.
#[derive(Debug)]
pub struct Store {
    config: StorageConfig,
    data_dir: PathBuf,
    tenants_dir: PathBuf,
    root: Arc<dyn ObjectStore>,
    mode: OpenMode,
    writer: Option<WalWriter>,
    tenants: tokio::sync::Mutex<HashMap<String, Arc<TenantStore>>>,
    /// The tenants opened so far, readable without awaiting (background tasks, tables API).
    opened: RwLock<Vec<Arc<TenantStore>>>,
    /// Bytes buffered in all tables of all tenants, against the ingest share of the budget.
    buffers: Arc<BufferBudget>,
    /// Set when the WAL is in the object store: may this process acknowledge writes now.
    wal_lease: Option<Arc<WalLease>>,
    /// The local copies of a remote bucket's Parquet files, when there is one.
    file_cache: Option<Arc<FileCache>>,
    /// The other streams seen by the last follow pass, for adoption.
    other_streams: RwLock<std::collections::BTreeSet<String>>,
    /// Every tenant's usage counters on this node.
    meter: Arc<crate::usage::Meter>,
    _lock: Option<File>,
}

impl Store {
    /// Opens the data dir. In read-write mode it takes an exclusive lock on `data_dir/LOCK` so
    /// two writers never share one WAL, and replays every tenant's WAL before returning.
    pub async fn open(
        config: StorageConfig,
        data_dir: &Path,
        tenants_dir: &Path,
        mode: OpenMode,
    ) -> Result<Arc<Self>, StorageError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StorageError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        // Everything under it is the tenants' data: the server's user alone may enter.
        #[cfg(unix)]
        if mode == OpenMode::ReadWrite {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).map_err(
                |source| StorageError::Io {
                    path: data_dir.to_path_buf(),
                    source,
                },
            )?;
        }
        let lock = match mode {
            OpenMode::ReadOnly => None,
            OpenMode::ReadWrite => Some(lock_data_dir(data_dir)?),
        };
        let mut root = object_store_for(&config.object_store, data_dir)?;
        let file_cache = match config.object_store.starts_with("s3://") && config.cache_bytes > 0 {
            true => {
                let dir = data_dir.join("cache");
                let cache = FileCache::new(root, dir.clone(), config.cache_bytes)
                    .map_err(|source| StorageError::Io { path: dir, source })?;
                let cache = Arc::new(cache);
                root = cache.clone();
                Some(cache)
            }
            false => None,
        };
        let mut config = config;
        let wal_lease = config
            .wal_in_object_store()
            .then(|| Arc::new(WalLease::default()));
        let target = match &wal_lease {
            Some(lease) => {
                if mode == OpenMode::ReadWrite {
                    refuse_local_segments(data_dir)?;
                }
                config.wal_id = wal_objects::new_stream_id()?;
                WalTarget::Objects(ObjectTarget {
                    runtime: tokio::runtime::Handle::current(),
                    lease: lease.clone(),
                    put_timeout: config.wal_put_timeout.0,
                    group_wait: config.wal_group_wait.0,
                })
            }
            None => {
                config.wal_id = wal_id(data_dir, mode)?;
                WalTarget::Local
            }
        };
        let writer = (mode == OpenMode::ReadWrite).then(|| WalWriter::start(target).0);
        let store = Arc::new(Self {
            buffers: Arc::new(BufferBudget::new(config.buffer_limit_bytes)),
            wal_lease,
            file_cache,
            other_streams: RwLock::default(),
            meter: Arc::default(),
            config,
            data_dir: data_dir.to_path_buf(),
            tenants_dir: tenants_dir.to_path_buf(),
            root,
            mode,
            writer,
            tenants: tokio::sync::Mutex::new(HashMap::new()),
            opened: RwLock::new(vec![]),
            _lock: lock,
        });
        // Open every tenant with a WAL (so acknowledged rows are queryable and get persisted
        // even if no request names that tenant again) and every tenant folder (so retention and
        // compaction reach tenants nobody is writing to).
        let mut names = crate::config::tenant_folders(&store.data_dir.join("wal"));
        names.extend(crate::config::tenant_folders(&store.tenants_dir));
        names.sort();
        names.dedup();
        for name in names {
            store.open_tenant(&name).await?;
        }
        Ok(store)
    }

    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    /// The ingest buffers' share of the memory budget, and what they hold now.
    /// Every tenant's usage counters on this node.
    pub fn meter(&self) -> &crate::usage::Meter {
        &self.meter
    }

    pub fn buffers(&self) -> &BufferBudget {
        &self.buffers
    }

    pub fn tenants_dir(&self) -> &Path {
        &self.tenants_dir
    }

    /// The tenant's store; the tenant exists when it has a folder under the tenants dir.
    pub async fn tenant(&self, name: &str) -> Result<Arc<TenantStore>, StorageError> {
        validate_tenant_name(name)?;
        if !self.tenants_dir.join(name).is_dir() {
            return Err(StorageError::UnknownTenant {
                tenant: name.into(),
            });
        }
        self.open_tenant(name).await
    }

    async fn open_tenant(&self, name: &str) -> Result<Arc<TenantStore>, StorageError> {
        let mut tenants = self.tenants.lock().await;
        if let Some(t) = tenants.get(name) {
            return Ok(t.clone());
        }
        let objects: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(self.root.clone(), name));
        let tenant = TenantStore::open(
            name,
            self.config.clone(),
            objects,
            self.data_dir.join("wal").join(name),
            tenant::WalAccess {
                writer: self.writer.clone(),
                mode: self.mode,
                object_lease: self.wal_lease.clone(),
            },
            self.buffers.clone(),
            self.meter.tenant(name),
        )
        .await?;
        // Rows other nodes acknowledged are visible from the first request on.
        let followed = tenant.follow().await?;
        self.other_streams.write().extend(followed.streams);
        // tenant.yaml's declarations from the first moment others can see the tenant: a
        // maintenance pass without them would apply the server's retention and drop the
        // declared rollups. A tenant.yaml that does not load leaves maintenance waiting.
        match crate::config::TenantConfig::load(&self.tenants_dir.join(name)) {
            Ok(settings) => {
                for e in tenant.apply_settings(settings) {
                    tracing::warn!(tenant = %name, error = %e, "a table declaration was refused");
                }
            }
            Err(e) => {
                tracing::warn!(tenant = %name, error = %e, "tenant.yaml does not load; maintenance waits for it")
            }
        }
        let tenant = Arc::new(tenant);
        tenants.insert(name.to_string(), tenant.clone());
        self.opened.write().push(tenant.clone());
        Ok(tenant)
    }

    /// Every tenant opened so far.
    pub fn opened_tenants(&self) -> Vec<Arc<TenantStore>> {
        self.opened.read().clone()
    }

    /// The local copies of a remote bucket's Parquet files (`storage.cache_bytes`).
    pub fn file_cache(&self) -> Option<&FileCache> {
        self.file_cache.as_deref()
    }

    /// This process's WAL stream and its lease, when the WAL is in the object store.
    pub fn wal_stream(&self) -> Option<(&str, &Arc<WalLease>)> {
        self.wal_lease
            .as_ref()
            .map(|lease| (self.config.wal_id.as_str(), lease))
    }

    /// One follow pass over every opened tenant (see `follow`); remembers the other streams.
    pub async fn follow_all(&self) {
        let mut streams = std::collections::BTreeSet::new();
        for tenant in self.opened_tenants() {
            match tenant.follow().await {
                Ok(followed) => streams.extend(followed.streams),
                Err(e) => {
                    tracing::warn!(tenant = %tenant.name, error = %e, "cannot follow the other nodes' writes")
                }
            }
        }
        *self.other_streams.write() = streams;
    }

    /// The other nodes' WAL streams with objects, as the last follow pass saw them.
    pub fn other_streams(&self) -> Vec<String> {
        self.other_streams.read().iter().cloned().collect()
    }

    /// Persists what is left of `stream` in every tenant (its node is gone and this node holds
    /// its lease); returns the rows persisted.
    pub async fn adopt(&self, stream: &str) -> Result<u64, StorageError> {
        let mut rows = 0;
        for tenant in self.opened_tenants() {
            rows += tenant.adopt(stream).await?;
        }
        Ok(rows)
    }

    /// Flushes every buffered row of every tenant to Parquet (shutdown).
    pub async fn persist_all(&self) -> Result<(), StorageError> {
        for tenant in self.opened_tenants() {
            tenant.persist_all().await?;
        }
        Ok(())
    }
}

/// The name of this data dir's WAL in the shared catalog: `<data_dir>/WAL_ID`, made with 16
/// random hex digits at first start (a reader beside no writer reads none: it replays nothing
/// of its own).
fn wal_id(data_dir: &Path, mode: OpenMode) -> Result<String, StorageError> {
    let path = data_dir.join("WAL_ID");
    let io = |source| StorageError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if mode == OpenMode::ReadWrite {
        // On disk before any WAL segment it names: a lost id would orphan them.
        let mut file = File::create(&path).map_err(io)?;
        std::io::Write::write_all(&mut file, id.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    Ok(id)
}

/// A data dir switched to the object-store WAL must not hold rows only its local WAL has.
fn refuse_local_segments(data_dir: &Path) -> Result<(), StorageError> {
    let wal = data_dir.join("wal");
    for tenant in crate::config::tenant_folders(&wal) {
        for table in std::fs::read_dir(wal.join(&tenant))
            .into_iter()
            .flatten()
            .flatten()
        {
            if !wal::list_segments(&table.path())?.is_empty() {
                return Err(StorageError::Internal {
                    message: format!(
                        "{} holds WAL segments not yet in Parquet; start once with \
                         `storage.wal: local` (a graceful stop persists them), then switch",
                        table.path().display()
                    ),
                });
            }
        }
    }
    Ok(())
}

fn lock_data_dir(data_dir: &Path) -> Result<File, StorageError> {
    let path = data_dir.join("LOCK");
    let file = File::create(&path).map_err(|source| StorageError::Io {
        path: path.clone(),
        source,
    })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(_) => Err(StorageError::DataDirLocked { path }),
    }
}

/// Builds the root object store from the configured URL.
fn object_store_for(url: &str, data_dir: &Path) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let local = |dir: PathBuf| -> Result<Arc<dyn ObjectStore>, StorageError> {
        std::fs::create_dir_all(&dir).map_err(|source| StorageError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Arc::new(LocalFileSystem::new_with_prefix(&dir)?))
    };
    match url {
        "" | "file" => local(data_dir.join("objects")),
        "memory://" | "memory:///" => Ok(Arc::new(InMemory::new())),
        other if other.starts_with("s3://") => s3(other),
        other => match other.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => local(PathBuf::from(path)),
            _ => Err(StorageError::UnsupportedObjectStore { url: other.into() }),
        },
    }
}

/// `s3://bucket[/prefix][?option=value&…]`: endpoint, region and credentials from the standard
/// `AWS_*` variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_REGION`, `AWS_ALLOW_HTTP` for a local server); settings that are not secret may also be
/// written as options (`endpoint`, `region`, `allow_http`, `skip_signature`, …). Create-only
/// puts (the catalog's commits) use S3's conditional writes (`If-None-Match`).
fn s3(url: &str) -> Result<Arc<dyn ObjectStore>, StorageError> {
    use object_store::aws::AmazonS3ConfigKey;
    let setup = |message: String| StorageError::ObjectStoreSetup {
        url: url.to_string(),
        message,
    };
    let parsed = url::Url::parse(url).map_err(|e| setup(e.to_string()))?;
    let Some(bucket) = parsed.host_str().filter(|b| !b.is_empty()) else {
        return Err(setup("no bucket: write s3://bucket/prefix".into()));
    };
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    for (name, value) in parsed.query_pairs() {
        let key: AmazonS3ConfigKey = name
            .parse()
            .map_err(|_| setup(format!("unknown option `{name}`")))?;
        if matches!(
            key,
            AmazonS3ConfigKey::SecretAccessKey | AmazonS3ConfigKey::Token
        ) {
            return Err(setup(format!(
                "`{name}` is a secret: set it in the environment (AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), not in the URL"
            )));
        }
        builder = builder.with_config(key, value.as_ref());
    }
    let store = builder.build().map_err(|e| setup(e.to_string()))?;
    let prefix = parsed.path().trim_matches('/');
    Ok(if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    })
}

/// Tenant names become folder names and object-store prefixes.
pub fn validate_tenant_name(name: &str) -> Result<(), StorageError> {
    let ok = crate::schema::is_valid_tenant_name(name);
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidName {
            what: "tenant",
            name: name.into(),
            rule: "1-63 characters of a-z, 0-9, '_' or '-', starting with a letter or digit",
        })
    }
}

/// Table names become SQL identifiers, folder names and object-store prefixes; lowercase keeps
/// them usable in SQL without quotes.
pub fn validate_table_name(name: &str) -> Result<(), StorageError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidName {
            what: "table",
            name: name.into(),
            rule: "1-128 characters of a-z, 0-9 or '_', starting with a letter",
        })
    }
}

/// The flush's CPU part (sort, merge, Parquet encode into memory), exposed for benchmarks.
pub fn encode_for_bench(
    schema: &TableSchema,
    batches: &[arrow::record_batch::RecordBatch],
) -> Result<usize, StorageError> {
    use datafusion::execution::memory_pool::{MemoryPool, UnboundedMemoryPool};
    let objects: Arc<dyn object_store::ObjectStore> =
        Arc::new(object_store::memory::InMemory::new());
    let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
    let arrow_schema = schema.arrow_schema();
    let mut bytes = 0;
    for day in persist::sorted_runs_by_day(schema, batches)? {
        let inputs = day
            .runs
            .into_iter()
            .map(|run| merge::run_input(&arrow_schema, run))
            .collect();
        let path = object_store::path::Path::from(day.day.to_string());
        let written = futures::executor::block_on(merge::merge_into_file(
            objects.clone(),
            &path,
            schema,
            merge::FileKind::Raw,
            inputs,
            &pool,
        ))?;
        bytes += written.map_or(0, |w| w.bytes as usize);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    /// A store in a temporary folder with its config, and its tenant `acme`.
    async fn acme(config: StorageConfig) -> (tempfile::TempDir, Arc<TenantStore>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tenants/acme")).unwrap();
        let store = Store::open(
            config,
            &dir.path().join("data"),
            &dir.path().join("tenants"),
            OpenMode::ReadWrite,
        )
        .await
        .unwrap();
        let tenant = store.tenant("acme").await.unwrap();
        (dir, tenant)
    }

    #[tokio::test]
    async fn writers_wait_for_a_flush_when_the_buffer_runs_away() {
        let config = StorageConfig {
            flush_max_rows: 10,
            ..Default::default()
        };
        let (_dir, tenant) = acme(config).await;
        let mut generator = crate::generate::CpuGenerator::new(10, 1);
        tenant.write("cpu", generator.batch(&[0])).await.unwrap();
        // Pretend a background flush is queued and never finishes: only backpressure is left.
        let table = tenant.table("cpu").unwrap();
        table.persist_requested.store(true, Ordering::SeqCst);
        for t in 1..10 {
            tenant.write("cpu", generator.batch(&[t])).await.unwrap();
            assert!(
                table.buffer_size().0 <= 30,
                "buffer grew to {}",
                table.buffer_size().0
            );
        }
        assert!(table.stats().persisted_rows >= 60);
        assert_eq!(
            table.stats().persisted_rows + table.stats().buffered_rows,
            100
        );
    }

    #[tokio::test]
    async fn a_request_spanning_tables_is_admitted_once_then_written_whole() {
        let config = StorageConfig {
            buffer_limit_bytes: 1,
            buffer_wait: crate::config::HumanDuration(std::time::Duration::from_millis(10)),
            ..Default::default()
        };
        let (_dir, tenant) = acme(config).await;
        let mut generator = crate::generate::CpuGenerator::new(10, 1);
        tenant.write("a", generator.batch(&[0])).await.unwrap();
        // The buffers are over their share and nothing flushes: a new request is refused
        // before anything is written...
        assert!(matches!(
            tenant.admit().await,
            Err(StorageError::BuffersFull { .. })
        ));
        // ...while the later tables of an admitted request are never cut off.
        tenant
            .write_admitted("b", generator.batch(&[1]))
            .await
            .unwrap();
        assert_eq!(tenant.table("b").unwrap().stats().buffered_rows, 10);
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_tenant_name("acme-1").is_ok());
        assert!(validate_tenant_name("../etc").is_err());
        assert!(validate_table_name("cpu_2").is_ok());
        assert!(validate_table_name("_catalog").is_err());
        assert!(validate_table_name("Cpu").is_err());
    }
}
