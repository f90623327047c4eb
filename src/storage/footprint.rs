//! How many bytes a tenant keeps, by kind, for usage metering and `quotas.storage_bytes`:
//! Parquet from the catalog's file sizes (raw and rollup files), the WAL not yet persisted
//! (local segments, or the objects of every stream in the bucket), attachments from a listing.

use futures::TryStreamExt;
use object_store::path::Path;

use super::{StorageError, TenantStore};
use crate::usage::StoredBytes;

impl TenantStore {
    /// The tenant's bytes now. Lists the bucket's WAL and attachment prefixes: meant for a
    /// periodic pass, not for every request.
    pub async fn stored_bytes(&self) -> Result<StoredBytes, StorageError> {
        let mut parquet = 0;
        for table in self.tables() {
            let inner = table.inner.lock();
            parquet += inner.files.iter().map(|f| f.size).sum::<u64>();
            parquet += inner
                .rollups
                .values()
                .flatten()
                .map(|f| f.size)
                .sum::<u64>();
        }
        let wal = if self.object_wal.is_some() {
            self.listed_bytes(super::wal_objects::WAL_PREFIX).await?
        } else {
            let dir = self.wal_dir.clone();
            tokio::task::spawn_blocking(move || folder_bytes(&dir))
                .await
                .map_err(|e| StorageError::Internal {
                    message: format!("measuring the WAL: {e}"),
                })?
        };
        let attachments = self.listed_bytes("attachments").await?;
        Ok(StoredBytes {
            parquet,
            wal,
            attachments,
        })
    }

    async fn listed_bytes(&self, prefix: &str) -> Result<u64, StorageError> {
        let prefix = Path::from(prefix);
        let objects: Vec<_> = self.objects.list(Some(&prefix)).try_collect().await?;
        Ok(objects.iter().map(|o| o.size).sum())
    }
}

/// Bytes of the files under `dir`, at any depth (0 when it does not exist).
fn folder_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => folder_bytes(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn folder_bytes_counts_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("cpu")).unwrap();
        std::fs::write(dir.path().join("cpu/1.wal"), [0u8; 100]).unwrap();
        std::fs::write(dir.path().join("top"), [0u8; 7]).unwrap();
        assert_eq!(super::folder_bytes(dir.path()), 107);
        assert_eq!(super::folder_bytes(&dir.path().join("missing")), 0);
    }
}
