//! The Parquet metadata cache: one LRU under one byte limit (`query.metadata_cache_bytes`, a
//! share of `memory.budget`) for all tenants, instead of one default-sized cache per tenant
//! that grew with the number of tenants. Each tenant reaches it through a view that prefixes
//! keys with the tenant's name: paths inside a tenant's object store are relative to it, and
//! two tenants' `cpu/2024-01-01/…` must never share an entry.

use std::sync::Arc;
use std::time::Duration;

use datafusion::common::{HashMap, TableReference};
use datafusion::execution::cache::cache_manager::CachedFileMetadataEntry;
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::cache::{Cache, CacheEntryInfo};
use object_store::path::Path;

type Entries = DefaultCache<Path, CachedFileMetadataEntry>;

/// The cache all tenants share.
#[derive(Clone)]
pub struct MetadataCache {
    entries: Arc<Entries>,
    limit: usize,
}

impl std::fmt::Debug for MetadataCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataCache")
            .field("limit", &self.limit)
            .finish()
    }
}

impl MetadataCache {
    pub fn new(limit: usize) -> Self {
        Self {
            entries: Arc::new(DefaultCache::new(limit).with_name("opsboard parquet metadata")),
            limit,
        }
    }

    /// Bytes the cached metadata of all tenants holds.
    pub fn used(&self) -> usize {
        self.entries.memory_used()
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Files whose metadata is cached, and how many of them with their page index.
    pub fn files(&self) -> (usize, usize) {
        let entries = self.entries.list_entries();
        let indexed = entries
            .values()
            .filter(|e| {
                let info = e.value.file_metadata.extra_info();
                info.get("page_index").map(String::as_str) == Some("true")
            })
            .count();
        (entries.len(), indexed)
    }

    /// `tenant`'s view of the cache.
    pub fn for_tenant(&self, tenant: &str) -> TenantMetadata {
        TenantMetadata {
            prefix: format!("{tenant}/"),
            entries: self.entries.clone(),
        }
    }
}

/// One tenant's keys in the shared cache.
pub struct TenantMetadata {
    prefix: String,
    entries: Arc<Entries>,
}

impl TenantMetadata {
    fn key(&self, path: &Path) -> Path {
        Path::from(format!("{}{path}", self.prefix))
    }
}

impl Cache<Path, CachedFileMetadataEntry> for TenantMetadata {
    fn get(&self, key: &Path) -> Option<CachedFileMetadataEntry> {
        self.entries.get(&self.key(key))
    }

    fn put(&self, key: &Path, value: CachedFileMetadataEntry) -> Option<CachedFileMetadataEntry> {
        self.entries.put(&self.key(key), value)
    }

    fn remove(&self, key: &Path) -> Option<CachedFileMetadataEntry> {
        self.entries.remove(&self.key(key))
    }

    fn contains_key(&self, key: &Path) -> bool {
        self.entries.contains_key(&self.key(key))
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// A cache, not data: clearing drops every tenant's entries, which only costs re-reads.
    fn clear(&self) {
        self.entries.clear()
    }

    fn name(&self) -> String {
        self.entries.name()
    }

    fn cache_limit(&self) -> usize {
        self.entries.cache_limit()
    }

    /// DataFusion sets its own default limit on every runtime it builds; the limit here is
    /// the server's share of the memory budget and stays.
    fn update_cache_limit(&self, _limit: usize) {}

    fn cache_ttl(&self) -> Option<Duration> {
        None
    }

    fn update_cache_ttl(&self, _ttl: Option<Duration>) {}

    /// This tenant's entries only, under the paths the tenant knows them by.
    fn list_entries(&self) -> HashMap<Path, CacheEntryInfo<CachedFileMetadataEntry>> {
        self.entries
            .list_entries()
            .into_iter()
            .filter_map(|(key, info)| {
                let own = key.as_ref().strip_prefix(self.prefix.as_str())?;
                Some((Path::from(own), info))
            })
            .collect()
    }

    fn drop_table_entries(&self, table_ref: &TableReference) -> datafusion::common::Result<()> {
        self.entries.drop_table_entries(table_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::cache::cache_manager::FileMetadata;

    struct Footer(usize);

    impl FileMetadata for Footer {
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
        fn memory_size(&self) -> usize {
            self.0
        }
        fn extra_info(&self) -> HashMap<String, String> {
            Default::default()
        }
    }

    fn entry(path: &str, bytes: usize) -> CachedFileMetadataEntry {
        let meta = object_store::ObjectMeta {
            location: Path::from(path),
            last_modified: chrono::Utc::now(),
            size: 100,
            e_tag: None,
            version: None,
        };
        CachedFileMetadataEntry::new(meta, Arc::new(Footer(bytes)))
    }

    #[test]
    fn tenants_share_one_limit_but_never_an_entry() {
        let cache = MetadataCache::new(1000);
        let (acme, globex) = (cache.for_tenant("acme"), cache.for_tenant("globex"));
        let path = Path::from("cpu/2024-01-01/1.parquet");
        acme.put(&path, entry("cpu/2024-01-01/1.parquet", 300));
        assert!(acme.contains_key(&path));
        assert!(
            !globex.contains_key(&path),
            "same relative path, other tenant"
        );
        globex.put(&path, entry("cpu/2024-01-01/1.parquet", 300));
        assert_eq!(acme.list_entries().keys().collect::<Vec<_>>(), [&path]);
        // DataFusion resets the limit on every runtime it builds; the budget's share stays.
        acme.update_cache_limit(50 * 1024 * 1024);
        assert_eq!(acme.cache_limit(), 1000);
        globex.put(&Path::from("cpu/b.parquet"), entry("cpu/b.parquet", 600));
        assert!(
            cache.used() <= cache.limit(),
            "{} > {}",
            cache.used(),
            cache.limit()
        );
        assert!(
            !acme.contains_key(&path),
            "the least recently used went first"
        );
    }
}
