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
