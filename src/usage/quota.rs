//! The windows quotas are counted in and the refusal they give: rows per UTC day (learned
//! across nodes from the usage table), queries per minute (per node), stored bytes.

const DAY_MS: i64 = 86_400_000;

/// Which quota of tenant.yaml's `quotas:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaKind {
    RowsPerDay,
    StorageBytes,
    QueriesPerMinute,
}

impl QuotaKind {
    pub const ALL: [QuotaKind; 3] = [
        QuotaKind::RowsPerDay,
        QuotaKind::StorageBytes,
        QuotaKind::QueriesPerMinute,
    ];

    /// Its key in tenant.yaml.
    pub fn name(self) -> &'static str {
        match self {
            QuotaKind::RowsPerDay => "rows_per_day",
            QuotaKind::StorageBytes => "storage_bytes",
            QuotaKind::QueriesPerMinute => "queries_per_minute",
        }
    }
}

/// A write or query refused by a quota: answered 429 with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QuotaExceeded {
    pub kind: QuotaKind,
    pub message: String,
    pub retry_after_secs: u64,
}

impl QuotaExceeded {
    pub(super) fn rows_per_day(
        tenant: &str,
        used: u64,
        rows: u64,
        limit: u64,
        now_ms: i64,
    ) -> Self {
        let to_midnight = DAY_MS - now_ms.rem_euclid(DAY_MS);
        Self {
            kind: QuotaKind::RowsPerDay,
            message: format!(
                "tenant {tenant} has written {used} of its {limit} rows today (quotas.rows_per_day); \
                 these {rows} rows are not written; writes are taken again at 00:00 UTC"
            ),
            retry_after_secs: (to_midnight as u64).div_ceil(1_000),
        }
    }

    pub(super) fn storage(tenant: &str, stored: u64, limit: u64) -> Self {
        Self {
            kind: QuotaKind::StorageBytes,
            message: format!(
                "tenant {tenant} keeps {stored} bytes, at its limit of {limit} bytes \
                 (quotas.storage_bytes); nothing is written until retention frees space or \
                 the quota is raised"
            ),
            // Stored bytes are measured at each usage recording.
            retry_after_secs: 60,
        }
    }

    pub(super) fn queries(tenant: &str, limit: u64, now_ms: i64) -> Self {
        let to_next = 60_000 - now_ms.rem_euclid(60_000);
        Self {
            kind: QuotaKind::QueriesPerMinute,
            message: format!(
                "tenant {tenant} has run its {limit} queries this minute \
                 (quotas.queries_per_minute); try again in the next minute"
            ),
            retry_after_secs: (to_next as u64).div_ceil(1_000),
        }
    }
}

/// Today's rows: what the usage table said at the last look (every node's recorded rows)
/// plus what this node counted since the recording that look included.
#[derive(Debug, Default)]
pub struct DayRows {
    day: i64,
    /// Rows this node wrote today.
    counted: u64,
    /// Today's total in the usage table at the last look.
    learned: u64,
    /// `counted` as it was when the recording included in `learned` was taken.
    counted_at_learn: u64,
}

impl DayRows {
    fn roll(&mut self, now_ms: i64) {
        let day = now_ms.div_euclid(DAY_MS);
        if day != self.day {
            *self = Self {
                day,
                ..Self::default()
            };
        }
    }

    pub(super) fn counted(&mut self, rows: u64, now_ms: i64) {
        self.roll(now_ms);
        self.counted += rows;
    }

    pub(super) fn today(&mut self, now_ms: i64) -> u64 {
        self.roll(now_ms);
        self.learned + (self.counted - self.counted_at_learn)
    }

    pub(super) fn counted_today(&mut self, now_ms: i64) -> u64 {
        self.roll(now_ms);
        self.counted
    }

    pub(super) fn learn(&mut self, total: u64, counted_at_read: u64, now_ms: i64) {
        self.roll(now_ms);
        self.learned = total;
        self.counted_at_learn = counted_at_read.min(self.counted);
    }
}
