//! Parquet readers whose cached metadata keeps the page index. DataFusion 55's opener first
//! asks a reader for the footer only, and when the filters need page statistics it reads and
//! decodes the page index itself, straight off the file — never through the metadata cache
//! (apache/datafusion#23978). Our files are small-paged on purpose (a few series or minutes
//! read a few pages), so every filtered query paid for reading and decoding the whole page
//! index of every file it opened: the largest single cost of an eight-host query. These readers
//! ask the cache for the footer *with* its page index, so the first open of a file loads it
//! once and later queries find it in memory.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::ParquetFileReaderFactory;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};

/// DataFusion's cached reader factory, with every metadata request widened to include the
/// page index (when the file has one).
#[derive(Debug)]
pub struct PageIndexReaderFactory {
    inner: CachedParquetFileReaderFactory,
}

impl PageIndexReaderFactory {
    pub fn new(store: Arc<dyn ObjectStore>, cache: Arc<FileMetadataCache>) -> Self {
        Self {
            inner: CachedParquetFileReaderFactory::new(store, cache),
        }
    }
}

impl ParquetFileReaderFactory for PageIndexReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> datafusion::common::Result<Box<dyn AsyncFileReader + Send>> {
        let inner = self
            .inner
            .create_reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(Box::new(PageIndexReader { inner }))
    }
}

struct PageIndexReader {
    inner: Box<dyn AsyncFileReader + Send>,
}

impl AsyncFileReader for PageIndexReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        // `Optional`: a file written without a page index still opens.
        let wanted = options
            .cloned()
            .unwrap_or_default()
            .with_page_index_policy(PageIndexPolicy::Optional);
        async move { self.inner.get_metadata(Some(&wanted)).await }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::metadata::MetadataCache;
    use arrow::array::{Float64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};

    /// A file of 4 pages with page statistics, put in a fresh in-memory store.
    async fn paged_file() -> (Arc<dyn ObjectStore>, PartitionedFile) {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Float64, false)]));
        let values = Float64Array::from((0..4096).map(f64::from).collect::<Vec<_>>());
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap();
        let props = WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_data_page_row_count_limit(1024)
            .set_write_batch_size(1024)
            .build();
        let mut bytes = vec![];
        let mut writer = ArrowWriter::try_new(&mut bytes, schema, Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let size = bytes.len() as u64;
        store
            .put(&Path::from("t/f.parquet"), PutPayload::from(bytes))
            .await
            .unwrap();
        (store, PartitionedFile::new("t/f.parquet", size))
    }

    /// What the opener asks for first: the footer without the page index.
    async fn footer_only(
        factory: &dyn ParquetFileReaderFactory,
        file: &PartitionedFile,
    ) -> Arc<ParquetMetaData> {
        let mut reader = factory
            .create_reader(0, file.clone(), None, &ExecutionPlanMetricsSet::new())
            .unwrap();
        let skip = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Skip);
        reader.get_metadata(Some(&skip)).await.unwrap()
    }

    #[tokio::test]
    async fn the_page_index_is_loaded_once_and_then_served_from_the_cache() {
        let (store, file) = paged_file().await;
        let cache: Arc<FileMetadataCache> = Arc::new(MetadataCache::new(1 << 20).for_tenant("t"));
        let first = footer_only(&PageIndexReaderFactory::new(store, cache.clone()), &file).await;
        assert!(first.column_index().is_some() && first.offset_index().is_some());
        assert_eq!(
            first.offset_index().unwrap()[0][0].page_locations().len(),
            4
        );
        // A store without the file: any read would fail, so the answer is the cache's.
        let empty: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let again = footer_only(&PageIndexReaderFactory::new(empty, cache), &file).await;
        assert!(again.column_index().is_some() && again.offset_index().is_some());
    }

    #[tokio::test]
    async fn datafusions_own_factory_caches_the_footer_alone() {
        // Why this module exists: if DataFusion starts caching the page index itself, this
        // fails and the wrapper can go.
        let (store, file) = paged_file().await;
        let cache: Arc<FileMetadataCache> = Arc::new(MetadataCache::new(1 << 20).for_tenant("t"));
        let plain = CachedParquetFileReaderFactory::new(store, cache);
        let metadata = footer_only(&plain, &file).await;
        assert!(metadata.offset_index().is_none());
    }
}
