//! The one write path every protocol and the CLI take: [`Write::to`] fixes the table's schema
//! for this write (live, else declared, else `time` only) and refuses system tables and tables
//! past the tenant's limit; each body or batch is decoded and checked against the schema (which
//! grows as new columns are seen, within the column limits) and against the table's retention
//! (a row that maintenance would drop at once is refused, or dropped on request); only the
//! [`Validated`] result of that can be appended — durably, all or nothing per append. A step
//! cannot be skipped: `Validated` is made nowhere else.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;

use super::{BatchBuilder, Format, IngestError, Precision, decode_into, normalize};
use crate::config::{HumanDuration, IngestConfig};
use crate::schema::SYSTEM_TABLES;
use crate::storage::{StorageError, TableSchema, TenantStore, validate_table_name};

/// The shape a write may have (`ingest.*` in opsboard.yaml).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub columns_per_write: usize,
    pub columns_per_table: usize,
    pub tables_per_tenant: usize,
    pub tag_bytes: usize,
    pub series_per_write: usize,
}

impl From<&IngestConfig> for Limits {
    fn from(c: &IngestConfig) -> Self {
        Self {
            columns_per_write: c.max_columns_per_write,
            columns_per_table: c.max_columns_per_table,
            tables_per_tenant: c.max_tables_per_tenant,
            tag_bytes: c.max_tag_bytes,
            series_per_write: c.max_series_per_write,
        }
    }
}

/// What to do with rows older than the table's retention, which maintenance would drop at
/// once after acknowledging them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnExpired {
    /// Refuse the whole write, naming the lines (422).
    #[default]
    Refuse,
    /// Write the other rows and say how many were dropped.
    Drop,
}

impl std::str::FromStr for OnExpired {
    type Err = IngestError;

    fn from_str(s: &str) -> Result<Self, IngestError> {
        match s {
            "refuse" | "" => Ok(Self::Refuse),
            "drop" => Ok(Self::Drop),
            other => Err(IngestError::InvalidOnExpired(other.to_string())),
        }
    }
}

/// A write being assembled: decoded batches not yet stored.
pub struct Write {
    tenant: Arc<TenantStore>,
    table: String,
    schema: TableSchema,
    batches: Vec<RecordBatch>,
    limits: Limits,
    on_expired: OnExpired,
    /// Rows older than this (epoch ns) are past the table's retention.
    oldest_ns: Option<i64>,
    retention: Option<HumanDuration>,
    dropped: usize,
    /// Whether `limits.series_per_write` applies (metrics protocols).
    limit_series: bool,
}

/// Where a request's rows come from, for metering and quotas: its protocol (`json`,
/// `line_protocol`, `remote_write`, `otlp`…) and the size of its body as received.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub protocol: &'static str,
    pub body_bytes: usize,
}

/// Batches that decoded and type-checked, ready to append.
pub struct Validated {
    tenant: Arc<TenantStore>,
    table: String,
    batches: Vec<RecordBatch>,
    dropped: usize,
}

impl Write {
    /// Starts a write to `table` of `tenant` from a request or the CLI: a bad table name, a
    /// system table or a new table past the tenant's limit is refused here.
    pub fn to(tenant: Arc<TenantStore>, table: &str, limits: Limits) -> Result<Self, IngestError> {
        if SYSTEM_TABLES.contains(&table) {
            return Err(IngestError::SystemTable(table.to_string()));
        }
        let tables = tenant.tables().len();
        if tenant.table(table).is_none() && tables >= limits.tables_per_tenant {
            return Err(IngestError::Limit {
                what: "tables per tenant".into(),
                limit: limits.tables_per_tenant,
                found: tables + 1,
            });
        }
        Ok(Self::system(tenant, table, limits)?)
    }

    /// A write of rows the server makes itself (the alert history), system tables included.
    pub fn system(
        tenant: Arc<TenantStore>,
        table: &str,
        limits: Limits,
    ) -> Result<Self, StorageError> {
        validate_table_name(table)?;
        let schema = tenant.schema_for_write(table);
        let retention = tenant.retention(table).map(HumanDuration);
        let oldest_ns = retention.map(|r| {
            let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
            now.saturating_sub(r.0.as_nanos().min(i64::MAX as u128) as i64)
        });
        Ok(Self {
            tenant,
            table: table.to_string(),
            schema,
            batches: vec![],
            limits,
            on_expired: OnExpired::Refuse,
            oldest_ns,
            retention,
            dropped: 0,
            limit_series: false,
        })
    }

    /// Refuses a batch with more distinct series than `ingest.max_series_per_write`: for the
    /// metrics protocols, whose tags are labels (JSON events may carry a distinct tag per row).
    pub fn limit_series(mut self) -> Self {
        self.limit_series = true;
        self
    }

    pub fn on_expired(mut self, policy: OnExpired) -> Self {
        self.on_expired = policy;
        self
    }

    /// A body in one of the text formats; returns its rows. CPU work: run it off the async
    /// workers for large bodies.
    pub fn decode(
        &mut self,
        format: Format,
        body: &[u8],
        precision: Precision,
    ) -> Result<usize, IngestError> {
        self.rows(precision, |builder| decode_into(format, body, builder))
    }

    /// The table also has `config`'s columns (those it lacks), even where rows leave them
    /// empty: readers of a system table can name every one of its columns.
    pub fn with_columns(mut self, config: &crate::config::TableConfig) -> Self {
        self.schema = self.schema.including(config);
        self
    }

    /// An Arrow batch from a file (Parquet), cast to the table's column types.
    pub fn arrow(&mut self, batch: &RecordBatch) -> Result<usize, IngestError> {
        let batch = normalize(batch, &self.schema)?;
        self.accept(batch)
    }

    /// Rows set value by value, as a decoder or the server itself does (the alert history).
    pub fn rows(
        &mut self,
        precision: Precision,
        fill: impl FnOnce(&mut BatchBuilder),
    ) -> Result<usize, IngestError> {
        let mut builder = BatchBuilder::new(&self.schema, precision)
            .with_oldest(self.oldest_ns)
            .with_max_tag_bytes(self.limits.tag_bytes);
        fill(&mut builder);
        let retention = self.retention.map(|r| r.to_string()).unwrap_or_default();
        let drop = self.on_expired == OnExpired::Drop;
        let (batch, dropped) = builder.finish_within(&retention, drop)?;
        self.dropped += dropped;
        if batch.num_rows() == 0 {
            return Ok(0);
        }
        self.accept(batch)
    }

    fn accept(&mut self, batch: RecordBatch) -> Result<usize, IngestError> {
        if self.limit_series {
            let series = super::series::distinct_series(&batch, self.limits.series_per_write);
            if series > self.limits.series_per_write {
                return Err(IngestError::Limit {
                    what: format!("distinct series per write (`{}`)", self.table),
                    limit: self.limits.series_per_write,
                    found: series,
                });
            }
        }
        let columns = batch.num_columns();
        if columns > self.limits.columns_per_write {
            return Err(IngestError::Limit {
                what: "columns per write".into(),
                limit: self.limits.columns_per_write,
                found: columns,
            });
        }
        let merged = self.schema.merge(&self.table, &batch.schema())?;
        let columns = merged.columns().len();
        if columns > self.limits.columns_per_table && columns > self.schema.columns().len() {
            return Err(IngestError::Limit {
                what: format!("columns per table (`{}`)", self.table),
                limit: self.limits.columns_per_table,
                found: columns,
            });
        }
        self.schema = merged;
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
            dropped: self.dropped,
        }
    }
}

impl Validated {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Rows left out because they were past the table's retention (`on_expired=drop`).
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Appends every batch (WAL + fsync, then visible); returns the rows written. A single
    /// batch — what every request makes — is all or nothing. Rows the server writes itself:
    /// neither metered nor held to the tenant's quotas.
    pub async fn append(self) -> Result<usize, StorageError> {
        let mut rows = 0;
        for batch in self.batches {
            rows += self.tenant.write(&self.table, batch).await?;
        }
        Ok(rows)
    }

    /// A request's write into one table: held to the tenant's quotas, then appended as
    /// [`Self::append`] does and metered.
    pub async fn append_from(self, source: Source) -> Result<usize, StorageError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let tenant = self.tenant.clone();
        let table = self.table.clone();
        let rows = self.rows() as u64;
        tenant.usage().admit_rows(&tenant.quotas(), rows, now_ms)?;
        let written = self.append().await?;
        let bytes = source.body_bytes as u64;
        tenant
            .usage()
            .ingested(&table, source.protocol, written as u64, bytes, now_ms);
        Ok(written)
    }

    /// Appends the checked writes of one request spanning tables (line protocol, remote
    /// write): held to the tenant's quotas and admitted for memory once, before the first,
    /// so a quota or a full budget refuses the request whole instead of after some of its
    /// tables. Metered per table, the body's bytes shared among them by rows.
    pub async fn append_all(writes: Vec<Validated>, source: Source) -> Result<usize, StorageError> {
        let Some(first) = writes.first() else {
            return Ok(0);
        };
        let tenant = first.tenant.clone();
        let now_ms = chrono::Utc::now().timestamp_millis();
        let rows: usize = writes.iter().map(Validated::rows).sum();
        tenant
            .usage()
            .admit_rows(&tenant.quotas(), rows as u64, now_ms)?;
        tenant.admit().await?;
        // The tables go to the WAL writer together, so one group commit (one wait for fsync)
        // covers them all instead of one per table.
        let appends = writes.into_iter().map(|write| async move {
            let mut rows = 0;
            for batch in write.batches {
                rows += write.tenant.write_admitted(&write.table, batch).await?;
            }
            Ok::<(String, usize), StorageError>((write.table, rows))
        });
        let written = futures::future::try_join_all(appends).await?;
        let counts: Vec<u64> = written.iter().map(|(_, rows)| *rows as u64).collect();
        let shares = share_by_rows(source.body_bytes as u64, &counts);
        for ((table, rows), bytes) in written.iter().zip(shares) {
            tenant
                .usage()
                .ingested(table, source.protocol, *rows as u64, bytes, now_ms);
        }
        Ok(written.iter().map(|(_, rows)| rows).sum())
    }
}

/// `bytes` split in proportion to `rows`, summing to `bytes` exactly (the remainder goes to the
/// largest fractions first); all to the first when no rows were written.
fn share_by_rows(bytes: u64, rows: &[u64]) -> Vec<u64> {
    let total: u64 = rows.iter().sum();
    if total == 0 {
        let mut shares = vec![0; rows.len()];
        if let Some(first) = shares.first_mut() {
            *first = bytes;
        }
        return shares;
    }
    let exact: Vec<(u64, u128)> = rows
        .iter()
        .map(|&r| {
            let scaled = u128::from(bytes) * u128::from(r);
            (
                (scaled / u128::from(total)) as u64,
                scaled % u128::from(total),
            )
        })
        .collect();
    let mut shares: Vec<u64> = exact.iter().map(|(whole, _)| *whole).collect();
    let mut left = bytes - shares.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| exact[b].1.cmp(&exact[a].1));
    for i in order {
        if left == 0 {
            break;
        }
        shares[i] += 1;
        left -= 1;
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_shared_among_tables_by_rows_to_the_byte() {
        assert_eq!(share_by_rows(100, &[1, 1, 1]), [34, 33, 33]);
        assert_eq!(share_by_rows(10, &[3, 0, 1]), [8, 0, 2]);
        assert_eq!(share_by_rows(7, &[0, 0]), [7, 0]);
        assert_eq!(share_by_rows(5, &[]), Vec::<u64>::new());
        assert_eq!(
            share_by_rows(u64::MAX, &[u64::MAX / 2, u64::MAX / 2])
                .iter()
                .sum::<u64>(),
            u64::MAX
        );
    }
    use crate::config::StorageConfig;
    use crate::storage::{OpenMode, Store};

    const LIMITS: Limits = Limits {
        columns_per_write: 4,
        columns_per_table: 5,
        tables_per_tenant: 3,
        tag_bytes: 8,
        series_per_write: 3,
    };

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
        let mut write = Write::to(tenant.clone(), "events", LIMITS).unwrap();
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
            Write::to(tenant.clone(), "../etc", LIMITS).is_err(),
            "bad table name"
        );
        assert!(matches!(
            Write::to(tenant.clone(), "alerts", LIMITS),
            Err(IngestError::SystemTable(_))
        ));
        let mut write = Write::system(tenant.clone(), "alerts", LIMITS).unwrap();
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

    #[tokio::test]
    async fn shape_limits_name_the_limit_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, tenant) = tenant(dir.path()).await;
        let wide = "{\"time\": 1, \"a\": 1, \"b\": 2, \"c\": 3, \"d\": 4}\n";
        let mut write = Write::to(tenant.clone(), "wide", LIMITS).unwrap();
        let err = write
            .decode(Format::Ndjson, wide.as_bytes(), Precision::Milliseconds)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "columns per write limit of 4 reached (5); nothing was written"
        );
        // Two writes of four columns each would grow the table to six.
        let mut write = Write::to(tenant.clone(), "grow", LIMITS).unwrap();
        let first = "{\"time\": 1, \"a\": 1, \"b\": 2, \"c\": 3}\n";
        write
            .decode(Format::Ndjson, first.as_bytes(), Precision::Milliseconds)
            .unwrap();
        write.validated().append().await.unwrap();
        let mut write = Write::to(tenant.clone(), "grow", LIMITS).unwrap();
        let second = "{\"time\": 2, \"d\": 1, \"e\": 2}\n";
        let err = write
            .decode(Format::Ndjson, second.as_bytes(), Precision::Milliseconds)
            .unwrap_err();
        assert!(
            err.to_string().contains("columns per table (`grow`)"),
            "{err}"
        );
        let mut ok = Write::to(tenant.clone(), "grow", LIMITS).unwrap();
        let narrow = "{\"time\": 3, \"a\": 9}\n";
        ok.decode(Format::Ndjson, narrow.as_bytes(), Precision::Milliseconds)
            .unwrap();
        for table in ["t2", "t3"] {
            Write::to(tenant.clone(), table, LIMITS).unwrap();
            tenant
                .write(
                    table,
                    crate::ingest::decode(
                        Format::Ndjson,
                        b"{\"time\": 1}\n",
                        Precision::Milliseconds,
                        &TableSchema::default(),
                    )
                    .unwrap(),
                )
                .await
                .unwrap();
        }
        let err = Write::to(tenant.clone(), "t4", LIMITS).err().unwrap();
        assert!(
            err.to_string().starts_with("tables per tenant limit of 3"),
            "{err}"
        );
        assert!(
            Write::to(tenant.clone(), "grow", LIMITS).is_ok(),
            "existing tables still take writes"
        );
    }

    #[tokio::test]
    async fn rows_past_retention_are_refused_with_their_lines_or_dropped_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, tenant) = tenant(dir.path()).await;
        let mut settings = crate::config::TenantConfig::default();
        settings.tables.insert(
            "cpu".into(),
            crate::config::TableConfig {
                retention: Some(HumanDuration::from_secs(7 * 86_400)),
                ..Default::default()
            },
        );
        tenant.apply_settings(settings);
        let now_ms = chrono::Utc::now().timestamp_millis();
        let old = now_ms - 8 * 86_400_000;
        let body = format!(
            "{{\"time\": {now_ms}, \"v\": 1}}\n\n{{\"time\": {old}, \"v\": 2}}\n{{\"time\": {now_ms}, \"v\": 3}}\n"
        );
        let mut write = Write::to(tenant.clone(), "cpu", LIMITS).unwrap();
        let err = write
            .decode(Format::Ndjson, body.as_bytes(), Precision::Milliseconds)
            .unwrap_err();
        match &err {
            IngestError::Expired {
                details,
                total,
                retention,
            } => {
                assert_eq!((*total, retention.as_str()), (1, "7days"));
                assert_eq!(details[0].line, 3, "the blank line counts");
            }
            other => panic!("expected Expired, got {other}"),
        }
        let mut write = Write::to(tenant.clone(), "cpu", LIMITS)
            .unwrap()
            .on_expired(OnExpired::Drop);
        assert_eq!(
            write
                .decode(Format::Ndjson, body.as_bytes(), Precision::Milliseconds)
                .unwrap(),
            2
        );
        let checked = write.validated();
        assert_eq!((checked.rows(), checked.dropped()), (2, 1));
        assert_eq!(checked.append().await.unwrap(), 2);
    }
}
