//! Following the other nodes of a shared bucket (`storage.wal: object_store`): every
//! `storage.wal_follow_interval` a node takes the newest catalog version (files other nodes
//! flushed or compacted) and the other streams' WAL objects (rows they acknowledged and have
//! not flushed yet), so a row acknowledged anywhere is visible everywhere. A stream whose node
//! is gone is adopted: its rows are written to Parquet by the node that took its lease.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use futures::StreamExt;

use super::StorageError;
use super::catalog::{CatalogChange, Manifest};
use super::tenant::TenantStore;
use super::wal_objects::{self, WalObject};

/// WAL objects one follow pass reads at once.
const FOLLOW_READS: usize = 16;

/// What one follow pass saw.
#[derive(Debug, Default)]
pub struct Followed {
    /// Other streams with objects in this tenant.
    pub streams: BTreeSet<String>,
    /// Objects read this pass.
    pub objects_read: usize,
}

impl TenantStore {
    /// Takes the newest catalog version and reads the other streams' new WAL objects.
    pub async fn follow(&self) -> Result<Followed, StorageError> {
        let Some((own, _)) = &self.object_wal else {
            return Ok(Followed::default());
        };
        let manifest = self.take_catalog().await?;
        let mut followed = Followed::default();
        let mut gone = false;
        let mut new = vec![];
        for object in wal_objects::list(self.objects.as_ref(), None).await? {
            if object.stream == own.stream {
                continue;
            }
            followed.streams.insert(object.stream.clone());
            if object.seq <= persisted_through(&manifest, &object) {
                continue;
            }
            if let Some(table) = self.table(&object.table)
                && table.holds_remote(&object.stream, object.seq)
            {
                continue;
            }
            new.push(object);
        }
        // Side by side: a busy cluster makes many small objects, and each read is a round trip.
        let objects = self.objects.clone();
        let mut reads = futures::stream::iter(new)
            .map(|object| {
                let objects = objects.clone();
                async move {
                    let read = wal_objects::read(objects.as_ref(), &object).await;
                    (object, read)
                }
            })
            .buffered(FOLLOW_READS);
        while let Some((object, read)) = reads.next().await {
            match read? {
                Some(batches) => {
                    let table = self.table_or_create(&object.table)?;
                    for batch in &batches {
                        table.accept_schema(batch)?;
                    }
                    table.push_remote(&object.stream, object.seq, batches);
                    followed.objects_read += 1;
                }
                // Flushed and deleted since the catalog was read: its rows are in a newer
                // version, taken below so they are not missing until the next pass.
                None => gone = true,
            }
        }
        if gone {
            self.take_catalog().await?;
        }
        Ok(followed)
    }

    /// The newest catalog version, its files taken by every table (and the other nodes' rows
    /// it marks persisted dropped, in the same step).
    async fn take_catalog(&self) -> Result<Arc<Manifest>, StorageError> {
        let manifest = self.catalog.refresh().await?;
        for name in manifest.tables.keys() {
            self.table_or_create(name)?.set_files(&manifest);
        }
        Ok(manifest)
    }

    /// Writes what is left of another node's stream to Parquet, table by table, and deletes
    /// its objects. Call only while holding the stream's lease (its node is gone); a commit
    /// that finds the stream's mark moved (someone else adopted it) changes nothing. Returns
    /// the rows persisted.
    pub async fn adopt(&self, stream: &str) -> Result<u64, StorageError> {
        let manifest = self.take_catalog().await?;
        let mut by_table: BTreeMap<String, Vec<WalObject>> = BTreeMap::new();
        for object in wal_objects::list(self.objects.as_ref(), Some(stream)).await? {
            by_table
                .entry(object.table.clone())
                .or_default()
                .push(object);
        }
        let mut rows = 0;
        for (table_name, objects) in by_table {
            let mark = manifest
                .tables
                .get(&table_name)
                .map_or(0, |t| t.persisted_through(stream));
            let mut batches: Vec<RecordBatch> = vec![];
            let mut through = mark;
            for object in objects.iter().filter(|o| o.seq > mark) {
                if let Some(read) = wal_objects::read(self.objects.as_ref(), object).await? {
                    batches.extend(read);
                }
                through = through.max(object.seq);
            }
            let table = self.table_or_create(&table_name)?;
            if through > mark {
                for batch in &batches {
                    table.accept_schema(batch)?;
                }
                let (files, stats) = self.write_files(&table, batches, through).await?;
                let manifest = self
                    .catalog
                    .commit(&[CatalogChange::AddFiles {
                        table: table_name.clone(),
                        schema: table.schema(),
                        files,
                        wal: stream.to_string(),
                        wal_persisted_through: through,
                        expect_persisted: Some(mark),
                    }])
                    .await?;
                table.set_files(&manifest);
                rows += stats.rows;
                tracing::info!(tenant = %self.name, table = %table_name, stream, through, rows = stats.rows, "adopted a gone node's WAL rows");
            }
            wal_objects::delete_through(self.objects.as_ref(), stream, &table_name, through)
                .await?;
        }
        Ok(rows)
    }
}

fn persisted_through(manifest: &Manifest, object: &WalObject) -> u64 {
    manifest
        .tables
        .get(&object.table)
        .map_or(0, |t| t.persisted_through(&object.stream))
}
