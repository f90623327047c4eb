//! A node's local copy of the Parquet files it reads from a remote bucket
//! (`storage.cache_bytes`, in `<data_dir>/cache`). Parquet files are written once under unique
//! names and never changed, so a copy never goes stale: the first read of a file fetches it
//! whole, and every later read (footer, row groups, pages) is served from local disk. The
//! least recently used files are deleted past the byte limit; a lost cache folder costs only
//! the fetches. Everything else (catalog, WAL objects, conditional puts, lists) goes straight
//! to the bucket.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use moka::sync::Cache;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Hits and fetches since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct FileCacheStats {
    pub hits: AtomicU64,
    pub fetches: AtomicU64,
}

#[derive(Debug)]
pub struct FileCache {
    remote: Arc<dyn ObjectStore>,
    local: Arc<LocalFileSystem>,
    dir: PathBuf,
    /// Cached paths and their sizes; evicting one deletes its file.
    index: Cache<Path, u64>,
    /// One fetch per file at a time: the panels of a dashboard all open the same files at once.
    fetching: parking_lot::Mutex<std::collections::HashMap<Path, Arc<tokio::sync::Mutex<()>>>>,
    pub stats: Arc<FileCacheStats>,
}

impl fmt::Display for FileCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileCache({}, {})", self.remote, self.dir.display())
    }
}

fn cacheable(location: &Path, options: &GetOptions) -> bool {
    location.as_ref().ends_with(".parquet")
        && options.if_match.is_none()
        && options.if_none_match.is_none()
        && options.if_modified_since.is_none()
        && options.if_unmodified_since.is_none()
        && options.version.is_none()
}

impl FileCache {
    /// Caches `remote`'s Parquet files in `dir`, up to `max_bytes`; files already in `dir`
    /// (from an earlier run) are kept and counted.
    pub fn new(
        remote: Arc<dyn ObjectStore>,
        dir: PathBuf,
        max_bytes: u64,
    ) -> Result<Self, std::io::Error> {
        std::fs::create_dir_all(&dir)?;
        let local = Arc::new(
            LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| std::io::Error::other(e.to_string()))?,
        );
        let evicted = local.clone();
        let index = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_, size: &u64| u32::try_from(*size).unwrap_or(u32::MAX))
            .eviction_listener(move |path: Arc<Path>, _, _| {
                let local = evicted.clone();
                // Deleting is disk I/O; the listener may run on a runtime thread.
                std::thread::spawn(move || {
                    let _ = futures::executor::block_on(local.delete(&path));
                });
            })
            .build();
        let cache = Self {
            remote,
            local,
            dir,
            index,
            fetching: Default::default(),
            stats: Arc::default(),
        };
        cache.index_existing(&cache.dir.clone(), "");
        Ok(cache)
    }

    fn index_existing(&self, dir: &std::path::Path, prefix: &str) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            match entry.metadata() {
                Ok(m) if m.is_dir() => self.index_existing(&entry.path(), &key),
                Ok(m) if key.ends_with(".parquet") => {
                    self.index.insert(Path::from(key), m.len());
                }
                // Half-written copies of a crashed run.
                _ => {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }

    /// Copies the whole file from the bucket unless it is here already.
    async fn ensure_local(&self, location: &Path) -> Result<()> {
        if self.index.contains_key(location) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let turn = self
            .fetching
            .lock()
            .entry(location.clone())
            .or_default()
            .clone();
        let fetched = {
            let _turn = turn.lock().await;
            self.fetch(location).await
        };
        self.fetching.lock().remove(location);
        fetched
    }

    /// Copies the file, unless the fetch this one waited for did.
    async fn fetch(&self, location: &Path) -> Result<()> {
        if self.index.contains_key(location) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.stats.fetches.fetch_add(1, Ordering::Relaxed);
        let bytes = self.remote.get(location).await?.bytes().await?;
        let size = bytes.len() as u64;
        // LocalFileSystem writes a temporary file and renames it: a reader sees all or none.
        self.local.put(location, PutPayload::from(bytes)).await?;
        self.index.insert(location.clone(), size);
        Ok(())
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> u64 {
        self.index.run_pending_tasks();
        self.index.weighted_size()
    }
}

#[async_trait]
impl ObjectStore for FileCache {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.remote.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.remote.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if !cacheable(location, &options) || (options.head && !self.index.contains_key(location)) {
            return self.remote.get_opts(location, options).await;
        }
        self.ensure_local(location).await?;
        match self.local.get_opts(location, options.clone()).await {
            Ok(got) => Ok(got),
            // Evicted between the two steps: read the bucket.
            Err(object_store::Error::NotFound { .. }) => {
                self.index.invalidate(location);
                self.remote.get_opts(location, options).await
            }
            Err(e) => Err(e),
        }
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        if !cacheable(location, &GetOptions::default()) {
            return self.remote.get_ranges(location, ranges).await;
        }
        self.ensure_local(location).await?;
        match self.local.get_ranges(location, ranges).await {
            Ok(got) => Ok(got),
            Err(object_store::Error::NotFound { .. }) => {
                self.index.invalidate(location);
                self.remote.get_ranges(location, ranges).await
            }
            Err(e) => Err(e),
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // A deleted file's copy is left to age out: nothing names it any more.
        self.remote.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.remote.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.remote.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.remote.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn file(n: usize) -> Path {
        Path::from(format!("cpu/2024-01-01/{n:04}.parquet"))
    }

    #[tokio::test]
    async fn a_file_is_fetched_once_then_read_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let remote: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        remote
            .put(&file(1), PutPayload::from_static(b"0123456789"))
            .await
            .unwrap();
        let cache = FileCache::new(remote.clone(), dir.path().join("c"), 1 << 20).unwrap();
        assert_eq!(
            cache.get_range(&file(1), 2..5).await.unwrap(),
            Bytes::from_static(b"234")
        );
        // Gone from the bucket: the copy still answers, ranges and all.
        remote.delete(&file(1)).await.unwrap();
        let got = cache.get_ranges(&file(1), &[0..1, 8..10]).await.unwrap();
        assert_eq!(got, [Bytes::from_static(b"0"), Bytes::from_static(b"89")]);
        assert_eq!(
            cache
                .get(&file(1))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .len(),
            10
        );
        assert_eq!(cache.stats.fetches.load(Ordering::Relaxed), 1);
        // Many first readers at once: one fetch.
        remote
            .put(&file(2), PutPayload::from_static(b"abc"))
            .await
            .unwrap();
        let two = file(2);
        let readers = (0..8).map(|_| cache.get_range(&two, 0..3));
        for got in futures::future::join_all(readers).await {
            assert_eq!(got.unwrap(), "abc");
        }
        assert_eq!(cache.stats.fetches.load(Ordering::Relaxed), 2);
        // A later run on the same folder starts warm.
        let again = FileCache::new(remote.clone(), dir.path().join("c"), 1 << 20).unwrap();
        assert_eq!(again.held_bytes(), 13);
        assert_eq!(again.get_range(&file(1), 0..3).await.unwrap(), "012");
        // Anything but Parquet goes to the bucket every time.
        let catalog = Path::from("_catalog/00000000000000000001.json");
        remote
            .put(&catalog, PutPayload::from_static(b"v1"))
            .await
            .unwrap();
        assert_eq!(
            again.get(&catalog).await.unwrap().bytes().await.unwrap(),
            "v1"
        );
        remote
            .put(&catalog, PutPayload::from_static(b"v2"))
            .await
            .unwrap();
        assert_eq!(
            again.get(&catalog).await.unwrap().bytes().await.unwrap(),
            "v2"
        );
    }

    #[tokio::test]
    async fn least_recently_used_files_leave_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let remote: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        for n in 0..20 {
            remote
                .put(&file(n), PutPayload::from(vec![n as u8; 1000]))
                .await
                .unwrap();
        }
        let cache = FileCache::new(remote.clone(), dir.path().join("c"), 5_000).unwrap();
        for n in 0..20 {
            let got = cache.get(&file(n)).await.unwrap().bytes().await.unwrap();
            assert_eq!(got[0], n as u8);
        }
        assert!(cache.held_bytes() <= 5_000, "{}", cache.held_bytes());
        // The evicted copies leave the disk too (deleted off the request path).
        let mut on_disk = u64::MAX;
        for _ in 0..50 {
            on_disk = walk(&dir.path().join("c"));
            if on_disk <= 5_000 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(on_disk <= 5_000, "{on_disk} bytes left on disk");
    }

    fn walk(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    }
}
