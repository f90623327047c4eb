//! Typed panel answers cached in moka (each with its JSON made once, on the first API request
//! that needs it), keyed by tenant + config generation + panel + the request's
//! parameters as sent. Each entry lives for its panel's refresh interval; the whole cache is
//! bounded by bytes. A config reload bumps the tenant's generation (old keys can no longer
//! match) and drops its entries. An entry read in the last quarter of its life asks its
//! reader to compute its successor in the background (once), so an answer in steady use is
//! replaced before it expires and no viewer waits for the query.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::sync::OnceLock;

use bytes::Bytes;
use moka::Expiry;
use moka::sync::Cache;
use serde::Serialize;

use super::kinds::PanelAnswer;

/// One answer as the cache keeps it.
#[derive(Debug)]
pub struct PanelData {
    pub answer: PanelAnswer,
    json: OnceLock<Bytes>,
}

impl PanelData {
    pub fn new(answer: PanelAnswer) -> Self {
        Self {
            answer,
            json: OnceLock::new(),
        }
    }

    /// The answer as the API sends it; serialised once, then shared by every cache hit.
    pub fn json(&self) -> Bytes {
        self.json
            .get_or_init(|| {
                // Every answer type serialises (no maps with non-string keys, no failing
                // serialisers), so the error arm only guards against a future mistake.
                serde_json::to_vec(&self.answer)
                    .map(Bytes::from)
                    .unwrap_or_else(|e| Bytes::from(format!("{{\"error\":\"{e}\"}}")))
            })
            .clone()
    }

    /// Bytes the entry holds, for the cache's weigher: its JSON (made now, once — an API
    /// request would make it anyway) twice, the typed value being of that order too.
    pub fn weight(&self) -> usize {
        let image = match &self.answer {
            PanelAnswer::CustomImage(image) => image.bytes.len(),
            _ => 0,
        };
        self.json().len() * 2 + image
    }
}

/// The share of an entry's life after which a read starts computing its successor.
const REFRESH_AHEAD: f64 = 0.75;

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct Key {
    pub tenant: String,
    pub generation: u64,
    pub panel: String,
    pub params: String,
}

#[derive(Clone)]
struct Entry {
    data: Arc<PanelData>,
    ttl: Duration,
    made: Instant,
    /// Set by the first reader told to refresh it.
    refreshing: Arc<AtomicBool>,
}

/// A cached answer, and whether its reader should compute its successor now.
pub struct Hit {
    pub data: Arc<PanelData>,
    pub refresh: bool,
}

struct PerEntryTtl;

impl Expiry<Key, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &Key, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    /// A refreshed answer lives its own full interval. moka's default keeps the replaced
    /// entry's deadline, which let every refreshed answer expire on its predecessor's schedule
    /// and sent its viewers to a miss each interval despite the refresh ahead.
    fn expire_after_update(
        &self,
        _key: &Key,
        value: &Entry,
        _now: Instant,
        _until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

pub struct PanelCache {
    cache: Cache<Key, Entry>,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Per tenant, bumped by each of its invalidations: an answer computed from before one
    /// is not kept (other tenants' alert changes do not cost this one its answers).
    invalidations: parking_lot::Mutex<HashMap<String, u64>>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Misses answered by another request's computation of the same answer.
    pub shared: u64,
    /// Panel aggregates answered by a query another panel ran (shared scans).
    pub scans_shared: u64,
    pub entries: u64,
    pub weighted_bytes: u64,
    pub max_bytes: u64,
}

impl PanelCache {
    pub fn new(max_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &Key, entry: &Entry| {
                let size = entry.data.weight()
                    + key.params.len()
                    + key.panel.len()
                    + key.tenant.len()
                    + 64;
                u32::try_from(size).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .support_invalidation_closures()
            .build();
        Self {
            cache,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: Default::default(),
        }
    }

    pub fn get(&self, key: &Key) -> Option<Hit> {
        match self.cache.get(key) {
            Some(entry) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                let ageing = entry.made.elapsed() >= entry.ttl.mul_f64(REFRESH_AHEAD);
                let refresh = ageing && !entry.refreshing.swap(true, Ordering::AcqRel);
                Some(Hit {
                    data: entry.data,
                    refresh,
                })
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Invalidations so far: read before computing an answer, handed to [`Self::insert`].
    pub fn epoch(&self, tenant: &str) -> u64 {
        self.invalidations.lock().get(tenant).copied().unwrap_or(0)
    }

    fn bump(&self, tenant: &str) {
        *self
            .invalidations
            .lock()
            .entry(tenant.to_string())
            .or_default() += 1;
    }

    /// Keeps `data` unless an invalidation happened since `epoch` (the answer may predate
    /// what it invalidated: an alert list computed before the alert changed).
    pub fn insert(&self, key: Key, data: Arc<PanelData>, ttl: Duration, epoch: u64) {
        if self.epoch(&key.tenant) == epoch {
            let entry = Entry {
                data,
                ttl,
                made: Instant::now(),
                refreshing: Arc::default(),
            };
            self.cache.insert(key, entry);
        }
    }

    pub fn invalidate_tenant(&self, tenant: &str) {
        self.bump(tenant);
        let tenant = tenant.to_string();
        // Only fails when closures are not enabled, and they are.
        let _ = self
            .cache
            .invalidate_entries_if(move |k, _| k.tenant == tenant);
    }

    /// Drops the cached answers of `panels` of `tenant`.
    pub fn invalidate_panels(&self, tenant: &str, panels: Vec<String>) {
        self.bump(tenant);
        let tenant = tenant.to_string();
        let _ = self
            .cache
            .invalidate_entries_if(move |k, _| k.tenant == tenant && panels.contains(&k.panel));
    }

    pub fn stats(&self) -> CacheStats {
        self.cache.run_pending_tasks();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            shared: 0,
            scans_shared: 0,
            entries: self.cache.entry_count(),
            weighted_bytes: self.cache.weighted_size(),
            max_bytes: self.cache.policy().max_capacity().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::panels::{Header, PanelAnswer, Range, TemplateAnswer};

    fn key(tenant: &str, generation: u64) -> Key {
        Key {
            tenant: tenant.into(),
            generation,
            panel: "p".into(),
            params: "{}".into(),
        }
    }

    fn data(len: usize) -> Arc<PanelData> {
        Arc::new(PanelData::new(PanelAnswer::CustomTemplate(
            TemplateAnswer {
                header: Header {
                    panel: "p".into(),
                    title: "t".into(),
                    description: None,
                    range: Range {
                        from: Timestamp::from_ms(0),
                        to: Timestamp::from_ms(1),
                    },
                },
                html: "x".repeat(len),
            },
        )))
    }

    #[test]
    fn counts_hits_and_expires_and_invalidates() {
        let cache = PanelCache::new(1 << 20);
        assert!(cache.get(&key("a", 1)).is_none());
        cache.insert(key("a", 1), data(10), Duration::from_secs(60), 0);
        cache.insert(key("b", 1), data(10), Duration::from_millis(1), 0);
        assert!(cache.get(&key("a", 1)).is_some());
        std::thread::sleep(Duration::from_millis(20));
        assert!(cache.get(&key("b", 1)).is_none(), "expired after its ttl");
        cache.invalidate_tenant("a");
        assert!(cache.get(&key("a", 1)).is_none());
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, 3));
    }

    #[test]
    fn live_panels_are_dropped_alone() {
        let cache = PanelCache::new(1 << 20);
        let key = |panel: &str| Key {
            panel: panel.into(),
            ..key("a", 1)
        };
        cache.insert(key("alerts"), data(10), Duration::from_secs(60), 0);
        cache.insert(key("cpu"), data(10), Duration::from_secs(60), 0);
        cache.invalidate_panels("a", vec!["alerts".into()]);
        assert!(cache.get(&key("alerts")).is_none());
        assert!(cache.get(&key("cpu")).is_some());
    }

    #[test]
    fn an_answer_computed_before_an_invalidation_is_not_kept() {
        let cache = PanelCache::new(1 << 20);
        let (before, other) = (cache.epoch("a"), cache.epoch("b"));
        cache.invalidate_panels("a", vec!["alerts".into()]);
        cache.insert(key("a", 1), data(10), Duration::from_secs(60), before);
        assert!(cache.get(&key("a", 1)).is_none());
        cache.insert(
            key("a", 1),
            data(10),
            Duration::from_secs(60),
            cache.epoch("a"),
        );
        assert!(cache.get(&key("a", 1)).is_some());
        // Another tenant's invalidation does not concern it.
        cache.insert(key("b", 1), data(10), Duration::from_secs(60), other);
        assert!(cache.get(&key("b", 1)).is_some());
    }

    #[test]
    fn an_ageing_entry_asks_one_reader_to_refresh_it() {
        let cache = PanelCache::new(1 << 20);
        cache.insert(key("a", 1), data(10), Duration::from_millis(200), 0);
        assert!(!cache.get(&key("a", 1)).unwrap().refresh, "young: no");
        std::thread::sleep(Duration::from_millis(160));
        assert!(
            cache.get(&key("a", 1)).unwrap().refresh,
            "the first reader past 3/4"
        );
        assert!(!cache.get(&key("a", 1)).unwrap().refresh, "only the first");
        cache.insert(key("a", 1), data(10), Duration::from_millis(200), 0);
        assert!(
            !cache.get(&key("a", 1)).unwrap().refresh,
            "its successor is young"
        );
    }

    #[test]
    fn a_refreshed_answer_outlives_its_predecessor() {
        let cache = PanelCache::new(1 << 20);
        let ttl = Duration::from_millis(1000);
        cache.insert(key("a", 1), data(10), ttl, 0);
        std::thread::sleep(Duration::from_millis(800));
        // The refresh ahead lands.
        cache.insert(key("a", 1), data(10), ttl, 0);
        // Past the first answer's deadline (1 s), inside its successor's (1.8 s): a late
        // wake-up of this sleep only narrows that margin from 600 ms.
        std::thread::sleep(Duration::from_millis(400));
        assert!(
            cache.get(&key("a", 1)).is_some(),
            "the successor expires a full interval after it was made"
        );
        std::thread::sleep(Duration::from_millis(900));
        assert!(cache.get(&key("a", 1)).is_none(), "and then it does expire");
    }

    #[test]
    fn bounded_by_bytes() {
        let cache = PanelCache::new(10_000);
        for g in 0..100 {
            cache.insert(key("a", g), data(1_000), Duration::from_secs(60), 0);
        }
        let stats = cache.stats();
        assert!(stats.weighted_bytes <= 10_000, "{stats:?}");
    }
}
