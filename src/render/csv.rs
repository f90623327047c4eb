//! CSV results: one header line, then rows; timestamps in RFC 3339.

use arrow::csv::WriterBuilder;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::{Encoder, RenderError};

pub struct CsvEncoder {
    schema: SchemaRef,
    header_written: bool,
}

impl CsvEncoder {
    pub fn new(schema: &SchemaRef) -> Self {
        Self {
            schema: schema.clone(),
            header_written: false,
        }
    }
}

impl Encoder for CsvEncoder {
    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, RenderError> {
        let mut out = Vec::with_capacity(batch.num_rows() * 64);
        {
            let mut writer = WriterBuilder::new()
                .with_header(!self.header_written)
                .build(&mut out);
            writer.write(batch)?;
        }
        self.header_written = true;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, RenderError> {
        // An empty result still names its columns.
        if self.header_written {
            return Ok(vec![]);
        }
        self.batch(&RecordBatch::new_empty(self.schema.clone()))
    }
}
