//! CSV results: one header line, then rows; timestamps in RFC 3339.

use arrow::csv::WriterBuilder;
use arrow::record_batch::RecordBatch;

use super::{Encoder, RenderError};

#[derive(Default)]
pub struct CsvEncoder {
    header_written: bool,
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
        Ok(vec![])
    }
}
