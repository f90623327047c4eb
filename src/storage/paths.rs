//! Typed object-store keys. Every key the storage layer writes is built here, relative to the
//! tenant's own prefix (the object store handed to a tenant is already scoped to `{tenant}/`),
//! so the full layout is `{tenant}/{table}/{yyyy-mm-dd}/{id}.parquet` and
//! `{tenant}/_catalog/{version}.json`.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, NaiveDate};
use object_store::path::Path;

/// A Parquet file of one table and one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetFilePath(Path);

impl ParquetFilePath {
    /// `id` orders files by creation: the WAL segment it covers (or 0 for compaction output)
    /// followed by a process-unique suffix so two writers never pick the same name.
    pub fn new(table: &str, day: NaiveDate, seq: u64) -> Self {
        let path = format!(
            "{table}/{}/{seq:020}-{}.parquet",
            day.format("%Y-%m-%d"),
            unique_suffix()
        );
        Self(Path::from(path))
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0.to_string()
    }
}

/// A file of one rollup of a table, for one UTC day: `{table}/_rollups/{rollup}/{day}/…`.
pub fn rollup_file_path(table: &str, rollup: &str, day: NaiveDate) -> Path {
    Path::from(format!(
        "{table}/_rollups/{rollup}/{}/{}.parquet",
        day.format("%Y-%m-%d"),
        unique_suffix()
    ))
}

pub const CATALOG_PREFIX: &str = "_catalog";

/// Key of catalog manifest `version`; zero-padded so lexical order is version order.
pub fn catalog_path(version: u64) -> Path {
    Path::from(format!("{CATALOG_PREFIX}/{version:020}.json"))
}

pub fn catalog_version(path: &Path) -> Option<u64> {
    path.filename()?.strip_suffix(".json")?.parse().ok()
}

/// The UTC day a nanosecond timestamp falls on.
pub fn day_of(time_ns: i64) -> NaiveDate {
    DateTime::from_timestamp_nanos(time_ns).date_naive()
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{nanos:016x}{:08x}{n:06x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_table_day_file() {
        let day = NaiveDate::from_ymd_opt(2024, 3, 9).unwrap();
        let p = ParquetFilePath::new("cpu", day, 42).into_string();
        assert!(p.starts_with("cpu/2024-03-09/00000000000000000042-"), "{p}");
        assert!(p.ends_with(".parquet"));
        assert_ne!(p, ParquetFilePath::new("cpu", day, 42).into_string());
    }

    #[test]
    fn catalog_versions_round_trip() {
        assert_eq!(catalog_version(&catalog_path(17)), Some(17));
        assert_eq!(day_of(0), NaiveDate::from_ymd_opt(1970, 1, 1).unwrap());
    }
}
