//! Parquet results, written row group by row group; bytes leave as soon as a row group is
//! complete, so memory stays at one row group however long the result.

use std::io::Write;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parking_lot::Mutex;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::{Encoder, RenderError};

/// Rows per row group of exported files: small enough to stream, large enough to compress.
const ROW_GROUP_ROWS: usize = 128 * 1024;

#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct ParquetEncoder {
    buffer: SharedBuffer,
    writer: Option<ArrowWriter<SharedBuffer>>,
}

impl ParquetEncoder {
    pub fn new(schema: &SchemaRef) -> Result<Self, RenderError> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let buffer = SharedBuffer::default();
        let writer = ArrowWriter::try_new(buffer.clone(), schema.clone(), Some(props))?;
        Ok(Self {
            buffer,
            writer: Some(writer),
        })
    }

    fn drain(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buffer.0.lock())
    }
}

impl Encoder for ParquetEncoder {
    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, RenderError> {
        if let Some(w) = self.writer.as_mut() {
            w.write(batch)?;
        }
        Ok(self.drain())
    }

    fn finish(&mut self) -> Result<Vec<u8>, RenderError> {
        if let Some(w) = self.writer.take() {
            w.close()?;
        }
        Ok(self.drain())
    }
}
