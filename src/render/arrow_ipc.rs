//! Arrow IPC stream results, for clients (pyarrow, polars) that want columns without parsing.

use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

use super::{Encoder, RenderError};

pub struct ArrowEncoder {
    writer: StreamWriter<Vec<u8>>,
}

impl ArrowEncoder {
    pub fn new(schema: &SchemaRef) -> Result<Self, RenderError> {
        Ok(Self {
            writer: StreamWriter::try_new(Vec::new(), schema)?,
        })
    }

    fn drain(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.get_mut())
    }
}

impl Encoder for ArrowEncoder {
    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, RenderError> {
        self.writer.write(batch)?;
        Ok(self.drain())
    }

    fn finish(&mut self) -> Result<Vec<u8>, RenderError> {
        self.writer.finish()?;
        Ok(self.drain())
    }
}
