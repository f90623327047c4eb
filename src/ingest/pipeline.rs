//! The one write path every protocol and the CLI take: [`Write::to`] fixes the table's schema
//! for this write (live, else declared, else `time` only), each body or batch is decoded and
//! checked against it (the schema grows as new columns are seen), and only the [`Validated`]
//! result of that can be appended — durably, all or nothing per append. A step cannot be
//! skipped: `Validated` is made nowhere else.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;

use super::{BatchBuilder, Format, IngestError, Precision, decode, normalize};
use crate::storage::{StorageError, TableSchema, TenantStore, validate_table_name};

/// A write being assembled: decoded batches not yet stored.
pub struct Write {
    tenant: Arc<TenantStore>,
    table: String,
    schema: TableSchema,
    batches: Vec<RecordBatch>,
}

/// Batches that decoded and type-checked, ready to append.
pub struct Validated {
    tenant: Arc<TenantStore>,
    table: String,
    batches: Vec<RecordBatch>,
}

impl Write {
    /// Starts a write to `table` of `tenant`; a bad table name is refused here.
    pub fn to(tenant: Arc<TenantStore>, table: &str) -> Result<Self, StorageError> {
        validate_table_name(table)?;
        let schema = tenant.schema_for_write(table);
        Ok(Self {
            tenant,
            table: table.to_string(),
            schema,
            batches: vec![],
        })
    }

    /// A body in one of the text formats; returns its rows. CPU work: run it off the async
    /// workers for large bodies.
    pub fn decode(
        &mut self,
        format: Format,
        body: &[u8],
        precision: Precision,
    ) -> Result<usize, IngestError> {
        let batch = decode(format, body, precision, &self.schema)?;
        self.accept(batch)
    }

    /// An Arrow batch from a file (Parquet), cast to the table's column types.
    pub fn arrow(&mut self, batch: &RecordBatch) -> Result<usize, IngestError> {
        let batch = normalize(batch, &self.schema)?;
        self.accept(batch)
    }

    /// Rows the server makes itself (the alert history), set value by value as a decoder would.
    pub fn rows(
        &mut self,
        precision: Precision,
        fill: impl FnOnce(&mut BatchBuilder),
    ) -> Result<usize, IngestError> {
        let mut builder = BatchBuilder::new(&self.schema, precision);
        fill(&mut builder);
        let batch = builder.finish()?;
        self.accept(batch)
    }

    fn accept(&mut self, batch: RecordBatch) -> Result<usize, IngestError> {
        self.schema = self.schema.merge(&self.table, &batch.schema())?;
        let rows = batch.num_rows();
        self.batches.push(batch);
        Ok(rows)
    }

    /// Everything decoded so far, checked.
    pub fn validated(self) -> Validated {
        Validated {
            tenant: self.tenant,
            table: self.table,
            batches: self.batches,
        }
    }
}

impl Validated {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Appends every batch (WAL + fsync, then visible); returns the rows written. A single
    /// batch — what every request makes — is all or nothing.
    pub async fn append(self) -> Result<usize, StorageError> {
        let mut rows = 0;
        for batch in self.batches {
            rows += self.tenant.write(&self.table, batch).await?;
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageConfig;
    use crate::storage::{OpenMode, Store};

    async fn tenant(dir: &std::path::Path) -> (Arc<Store>, Arc<TenantStore>) {
        std::fs::create_dir_all(dir.join("tenants/acme")).unwrap();
        let config = StorageConfig {
            object_store: "memory://".into(),
            ..Default::default()
        };
        let store = Store::open(
            config,
            &dir.join("data"),
            &dir.join("tenants"),
            OpenMode::ReadWrite,
        )
        .await
        .unwrap();
        let tenant = store.tenant("acme").await.unwrap();
        (store, tenant)
    }

    #[tokio::test]
    async fn a_later_chunk_that_contradicts_an_earlier_one_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, tenant) = tenant(dir.path()).await;
        let mut write = Write::to(tenant.clone(), "events").unwrap();
        let first = "{\"time\": 1, \"host\": \"a\", \"n\": 1.5}\n";
        assert_eq!(
            write
                .decode(Format::Ndjson, first.as_bytes(), Precision::Milliseconds)
                .unwrap(),
            1
        );
        // `n` became a float field in the first chunk; a string now is a conflict.
        let second = "{\"time\": 2, \"n\": \"many\"}\n";
        let err = write
            .decode(Format::Ndjson, second.as_bytes(), Precision::Milliseconds)
            .unwrap_err();
        assert!(err.to_string().contains('n'), "{err}");
        assert!(tenant.table("events").is_none(), "nothing appended yet");
        let rows = write.validated().append().await.unwrap();
        assert_eq!(rows, 1, "only the chunk that decoded");
    }

    #[tokio::test]
    async fn rows_made_by_the_server_take_the_same_checks() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, tenant) = tenant(dir.path()).await;
        assert!(
            Write::to(tenant.clone(), "../etc").is_err(),
            "bad table name"
        );
        let mut write = Write::to(tenant.clone(), "alerts").unwrap();
        let err = write
            .rows(Precision::Milliseconds, |b| {
                b.begin_row(1);
                b.set("rule", super::super::Value::Str("cpu".into()));
                b.end_row();
            })
            .unwrap_err();
        assert!(
            err.to_string().contains("invalid line"),
            "a row without time: {err}"
        );
        write
            .rows(Precision::Milliseconds, |b| {
                b.begin_row(1);
                b.set("time", super::super::Value::Int(1_000));
                b.set("rule", super::super::Value::Str("cpu".into()));
                b.end_row();
            })
            .unwrap();
        let checked = write.validated();
        assert_eq!(checked.rows(), 1);
        assert_eq!(checked.append().await.unwrap(), 1);
        assert_eq!(tenant.table("alerts").unwrap().stats().buffered_rows, 1);
    }
}
