//! Usage metering and quotas, per tenant, counted where the work is done: the write path counts
//! rows and bytes per table and protocol, the query engine each query's wall and CPU time and
//! the Parquet bytes it read, the panel engine each answer served, the export and attachment
//! routes their bytes, the access guard each API call. Counters live for the process (what
//! Prometheus expects of a counter); the server records their growth per hour into each
//! tenant's `opsboard_usage` table, which is also where a node learns what the other nodes
//! wrote today (see [`DayRows`]).
//!
//! Quotas (`quotas:` in tenant.yaml) are checked before the work: rows per UTC day and stored
//! bytes before a write, queries per minute before a query a caller asked for.

mod exposition;
mod quota;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

pub use crate::config::Quotas;
pub use exposition::{label_value, prometheus_text};
pub use quota::{DayRows, QuotaExceeded, QuotaKind};

/// The table each tenant's hourly usage rows are written to (a system table).
pub const USAGE_TABLE: &str = crate::schema::SYSTEM_TABLES[2];

/// The counters every tenant has besides ingestion (which is per table and protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Counter {
    Queries,
    QueryWallMicros,
    QueryCpuMicros,
    ScannedBytes,
    PanelRenders,
    ExportRows,
    ExportBytes,
    AttachmentBytes,
    ApiRequests,
}

impl Counter {
    pub const ALL: [Counter; 9] = [
        Counter::Queries,
        Counter::QueryWallMicros,
        Counter::QueryCpuMicros,
        Counter::ScannedBytes,
        Counter::PanelRenders,
        Counter::ExportRows,
        Counter::ExportBytes,
        Counter::AttachmentBytes,
        Counter::ApiRequests,
    ];

    /// The name of its rows in the usage table (`metric` column).
    pub fn name(self) -> &'static str {
        match self {
            Counter::Queries => "queries",
            Counter::QueryWallMicros => "query_wall_us",
            Counter::QueryCpuMicros => "query_cpu_us",
            Counter::ScannedBytes => "scanned_bytes",
            Counter::PanelRenders => "panel_renders",
            Counter::ExportRows => "export_rows",
            Counter::ExportBytes => "export_bytes",
            Counter::AttachmentBytes => "attachment_bytes",
            Counter::ApiRequests => "api_requests",
        }
    }
}

/// Rows and request bytes written into one table through one protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ingested {
    pub rows: u64,
    pub bytes: u64,
}

/// Bytes a tenant keeps, by where (measured by the server's recording pass).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredBytes {
    pub parquet: u64,
    pub wal: u64,
    pub attachments: u64,
}

impl StoredBytes {
    pub fn total(&self) -> u64 {
        self.parquet + self.wal + self.attachments
    }
}

/// Every tenant's usage on this node.
#[derive(Debug, Default)]
pub struct Meter {
    tenants: RwLock<BTreeMap<String, Arc<TenantUsage>>>,
}

impl Meter {
    /// The tenant's counters, made on first use.
    pub fn tenant(&self, name: &str) -> Arc<TenantUsage> {
        if let Some(usage) = self.tenants.read().get(name) {
            return usage.clone();
        }
        self.tenants
            .write()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(TenantUsage::new(name)))
            .clone()
    }

    /// The tenant's counters if it has any (an opened tenant always has): a name from a
    /// request path never makes a new set (nor a new label on /metrics).
    pub fn existing(&self, name: &str) -> Option<Arc<TenantUsage>> {
        self.tenants.read().get(name).cloned()
    }

    /// Every tenant counted so far, by name.
    pub fn tenants(&self) -> Vec<Arc<TenantUsage>> {
        self.tenants.read().values().cloned().collect()
    }
}

/// One tenant's counters and quota windows.
#[derive(Debug)]
pub struct TenantUsage {
    pub name: String,
    ingested: Mutex<BTreeMap<(String, &'static str), Ingested>>,
    counters: [AtomicU64; Counter::ALL.len()],
    refusals: Mutex<BTreeMap<QuotaKind, u64>>,
    stored: Mutex<Option<StoredBytes>>,
    day: Mutex<DayRows>,
    minute: Mutex<(i64, u64)>,
    /// The most queries admitted in one minute since the last [`TenantUsage::take_query_peak`].
    query_peak: AtomicU64,
}

impl TenantUsage {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            ingested: Mutex::default(),
            counters: Default::default(),
            refusals: Mutex::default(),
            stored: Mutex::default(),
            day: Mutex::default(),
            minute: Mutex::default(),
            query_peak: AtomicU64::new(0),
        }
    }

    /// Rows written into `table` through `protocol`, from request bodies of `bytes`.
    pub fn ingested(
        &self,
        table: &str,
        protocol: &'static str,
        rows: u64,
        bytes: u64,
        now_ms: i64,
    ) {
        let mut ingested = self.ingested.lock();
        let entry = ingested.entry((table.to_string(), protocol)).or_default();
        entry.rows += rows;
        entry.bytes += bytes;
        // Under the same lock as the totals: a snapshot sees a write in both or in neither.
        self.day.lock().counted(rows, now_ms);
    }

    /// Ingestion so far by (table, protocol), and the rows this node counted today, taken
    /// together (for a recording).
    pub fn snapshot(&self, now_ms: i64) -> (BTreeMap<(String, &'static str), Ingested>, u64) {
        let ingested = self.ingested.lock();
        let today = self.day.lock().counted_today(now_ms);
        (ingested.clone(), today)
    }

    pub fn add(&self, counter: Counter, amount: u64) {
        self.counters[counter as usize].fetch_add(amount, Ordering::Relaxed);
    }

    pub fn get(&self, counter: Counter) -> u64 {
        self.counters[counter as usize].load(Ordering::Relaxed)
    }

    /// Ingestion so far, by (table, protocol).
    pub fn ingestion(&self) -> BTreeMap<(String, &'static str), Ingested> {
        self.ingested.lock().clone()
    }

    /// Refusals so far, by quota.
    pub fn refusals(&self) -> BTreeMap<QuotaKind, u64> {
        self.refusals.lock().clone()
    }

    /// The bytes last measured (none before the first recording pass).
    pub fn stored(&self) -> Option<StoredBytes> {
        *self.stored.lock()
    }

    pub fn set_stored(&self, stored: StoredBytes) {
        *self.stored.lock() = Some(stored);
    }

    /// The rows written today (UTC) across the nodes, as last learned, plus this node's since.
    pub fn rows_today(&self, now_ms: i64) -> u64 {
        self.day.lock().today(now_ms)
    }

    /// What the usage table said at `now_ms` about today's rows (every node's recorded rows),
    /// given that this node had counted `counted_at_read` rows today when its own last
    /// recording was written.
    pub fn learn_rows_today(&self, recorded_total: u64, counted_at_read: u64, now_ms: i64) {
        self.day
            .lock()
            .learn(recorded_total, counted_at_read, now_ms);
    }

    fn refused(&self, kind: QuotaKind) {
        *self.refusals.lock().entry(kind).or_default() += 1;
    }
}

impl TenantUsage {
    /// Before a write of `rows`: refused when today's rows would pass `rows_per_day` or the
    /// stored bytes are at `storage_bytes`. Nothing is counted here (the write counts itself
    /// once stored), so a refused or failed write costs nothing.
    pub fn admit_rows(&self, quotas: &Quotas, rows: u64, now_ms: i64) -> Result<(), QuotaExceeded> {
        if let Some(limit) = quotas.rows_per_day {
            let used = self.rows_today(now_ms);
            if used.saturating_add(rows) > limit {
                self.refused(QuotaKind::RowsPerDay);
                return Err(QuotaExceeded::rows_per_day(
                    &self.name, used, rows, limit, now_ms,
                ));
            }
        }
        if let (Some(limit), Some(stored)) = (quotas.storage_bytes, self.stored())
            && stored.total() >= limit
        {
            self.refused(QuotaKind::StorageBytes);
            return Err(QuotaExceeded::storage(&self.name, stored.total(), limit));
        }
        Ok(())
    }

    /// Before a query a caller asked for: counted in this minute's window (per node), refused
    /// past `queries_per_minute`.
    pub fn admit_query(&self, quotas: &Quotas, now_ms: i64) -> Result<(), QuotaExceeded> {
        let Some(limit) = quotas.queries_per_minute else {
            return Ok(());
        };
        let minute = now_ms.div_euclid(60_000);
        let mut window = self.minute.lock();
        if window.0 != minute {
            *window = (minute, 0);
        }
        if window.1 >= limit {
            drop(window);
            self.refused(QuotaKind::QueriesPerMinute);
            return Err(QuotaExceeded::queries(&self.name, limit, now_ms));
        }
        window.1 += 1;
        self.query_peak.fetch_max(window.1, Ordering::Relaxed);
        Ok(())
    }

    /// The most queries admitted in one minute since the last call (for the 80 % warning).
    pub fn take_query_peak(&self) -> u64 {
        self.query_peak.swap(0, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn rows_per_day_counts_written_rows_and_starts_over_at_midnight() {
        let usage = TenantUsage::new("acme");
        let quotas = Quotas {
            rows_per_day: Some(100),
            ..Quotas::default()
        };
        let noon = 10 * DAY + DAY / 2;
        usage.admit_rows(&quotas, 60, noon).unwrap();
        usage.ingested("cpu", "json", 60, 600, noon);
        // 60 + 40 fits exactly; one more does not, and nothing is counted for a refusal.
        usage.admit_rows(&quotas, 40, noon).unwrap();
        let refused = usage.admit_rows(&quotas, 41, noon).unwrap_err();
        assert_eq!(refused.kind, QuotaKind::RowsPerDay);
        assert_eq!(refused.retry_after_secs, 43_200);
        assert!(
            refused.message.contains("60 of its 100 rows"),
            "{}",
            refused.message
        );
        assert_eq!(usage.rows_today(noon), 60);
        assert_eq!(usage.refusals()[&QuotaKind::RowsPerDay], 1);
        // The next UTC day starts from nothing.
        assert_eq!(usage.rows_today(11 * DAY), 0);
        usage.admit_rows(&quotas, 100, 11 * DAY).unwrap();
    }

    #[test]
    fn rows_other_nodes_recorded_count_against_the_day() {
        let usage = TenantUsage::new("acme");
        let quotas = Quotas {
            rows_per_day: Some(1_000),
            ..Quotas::default()
        };
        let t = 3 * DAY + 1_000;
        usage.ingested("cpu", "json", 100, 0, t);
        // The table says 900 rows today (this node's 100 included, as it recorded them).
        usage.learn_rows_today(900, usage.snapshot(t).1, t + 1);
        usage.ingested("cpu", "json", 50, 0, t + 2);
        assert_eq!(usage.rows_today(t + 3), 950);
        assert!(usage.admit_rows(&quotas, 51, t + 3).is_err());
        usage.admit_rows(&quotas, 50, t + 3).unwrap();
        // What was learned yesterday does not carry into today.
        assert_eq!(usage.rows_today(4 * DAY), 0);
    }

    #[test]
    fn stored_bytes_refuse_writes_once_at_the_limit() {
        let usage = TenantUsage::new("acme");
        let quotas = Quotas {
            storage_bytes: Some(1_000),
            ..Quotas::default()
        };
        // Not measured yet: not refused.
        usage.admit_rows(&quotas, 1, 0).unwrap();
        usage.set_stored(StoredBytes {
            parquet: 600,
            wal: 300,
            attachments: 99,
        });
        usage.admit_rows(&quotas, 1, 0).unwrap();
        usage.set_stored(StoredBytes {
            parquet: 600,
            wal: 300,
            attachments: 100,
        });
        let refused = usage.admit_rows(&quotas, 1, 0).unwrap_err();
        assert_eq!(refused.kind, QuotaKind::StorageBytes);
        assert!(
            refused.message.contains("1000 bytes"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn queries_per_minute_is_a_window_per_minute() {
        let usage = TenantUsage::new("acme");
        let quotas = Quotas {
            queries_per_minute: Some(3),
            ..Quotas::default()
        };
        let t = 7 * 60_000 + 45_000;
        for _ in 0..3 {
            usage.admit_query(&quotas, t).unwrap();
        }
        let refused = usage.admit_query(&quotas, t + 1_000).unwrap_err();
        assert_eq!(refused.retry_after_secs, 14);
        assert_eq!(usage.take_query_peak(), 3);
        usage.admit_query(&quotas, 8 * 60_000).unwrap();
        assert_eq!(usage.take_query_peak(), 1);
        // No quota: never refused.
        for _ in 0..10 {
            usage.admit_query(&Quotas::default(), t).unwrap();
        }
    }

    #[test]
    fn meter_hands_out_one_counter_set_per_tenant() {
        let meter = Meter::default();
        meter.tenant("b").add(Counter::Queries, 2);
        meter.tenant("a").add(Counter::Queries, 1);
        meter.tenant("b").add(Counter::Queries, 3);
        let names: Vec<_> = meter.tenants().iter().map(|t| t.name.clone()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(meter.tenant("b").get(Counter::Queries), 5);
    }
}
