//! The storage layer's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("unknown tenant {tenant:?}: no folder for it under the tenants dir")]
    UnknownTenant { tenant: String },
    #[error("invalid {what} name {name:?}: use {rule}")]
    InvalidName {
        what: &'static str,
        name: String,
        rule: &'static str,
    },
    #[error("column {column:?} of table {table:?} is a {existing}, the write has a {incoming}")]
    TypeConflict {
        table: String,
        column: String,
        existing: &'static str,
        incoming: &'static str,
    },
    #[error("column {column:?} of table {table:?} has unsupported type {data_type}")]
    UnsupportedType {
        table: String,
        column: String,
        data_type: String,
    },
    #[error("write to table {table:?} has no `time` column")]
    MissingTime { table: String },
    #[error(
        "data dir is in use by another opsboard process (lock {path}); stop it or write through its HTTP API"
    )]
    DataDirLocked { path: PathBuf },
    #[error("the store is open read-only")]
    ReadOnly,
    #[error(
        "object store URL {url:?} is not supported (use file, file:///abs/dir, s3://bucket/prefix or memory://)"
    )]
    UnsupportedObjectStore { url: String },
    /// An `s3://` store that cannot be set up (bad URL, missing region or credentials).
    #[error("object store {url:?}: {message}")]
    ObjectStoreSetup { url: String, message: String },
    #[error("WAL sync failed: {message}")]
    WalSync { message: String },
    /// The object store did not take a WAL object: nothing of the write is acknowledged.
    #[error("the object store did not take the write ({message}); retry shortly")]
    WalUnavailable { message: String },
    #[error(
        "this node does not hold its WAL lease now (the database is unreachable or another \
         node took over its rows); write through another node or retry shortly"
    )]
    WalLeaseLost,
    #[error("fenced: {message}")]
    Fenced { message: String },
    #[error("server is shutting down")]
    ShuttingDown,
    /// Over a quota of tenant.yaml: nothing of the write is stored.
    #[error(transparent)]
    Quota(#[from] crate::usage::QuotaExceeded),
    #[error(
        "write buffers hold {used} of their {limit} bytes (memory.budget) and flushes have not \
         caught up; retry in {retry_after_secs} s"
    )]
    BuffersFull {
        used: usize,
        limit: usize,
        retry_after_secs: u64,
    },
    #[error("catalog: {message}")]
    Catalog { message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Wal(#[from] super::wal::WalError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("merging sorted rows: {0}")]
    Merge(#[from] datafusion::error::DataFusionError),
    #[error("internal: {message}")]
    Internal { message: String },
    #[error(
        "row {row}, column {column:?} of table {table:?}: no attachment {id:?} in this tenant \
         (upload the file first: POST /api/v1/tenants/<tenant>/attachments)"
    )]
    UnknownAttachment {
        table: String,
        column: String,
        row: usize,
        id: String,
    },
}

impl StorageError {
    /// True when the request was at fault (bad names, types), false for server trouble.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            StorageError::InvalidName { .. }
                | StorageError::TypeConflict { .. }
                | StorageError::UnsupportedType { .. }
                | StorageError::MissingTime { .. }
                | StorageError::UnknownAttachment { .. }
        )
    }
}
