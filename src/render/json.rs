//! JSON results: an array of objects (`json`) or one object per line (`ndjson`). Every
//! object carries every column (nulls explicit) so clients see a stable shape.

use arrow::json::WriterBuilder;
use arrow::json::writer::LineDelimited;
use arrow::record_batch::RecordBatch;

use super::{Encoder, RenderError};

pub struct JsonEncoder {
    array: bool,
    rows_written: usize,
}

impl JsonEncoder {
    pub fn array() -> Self {
        Self {
            array: true,
            rows_written: 0,
        }
    }

    pub fn lines() -> Self {
        Self {
            array: false,
            rows_written: 0,
        }
    }
}

impl Encoder for JsonEncoder {
    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, RenderError> {
        let mut lines = Vec::with_capacity(batch.num_rows() * 64);
        {
            let mut writer = WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, LineDelimited>(&mut lines);
            writer.write(batch)?;
            writer.finish()?;
        }
        if !self.array {
            self.rows_written += batch.num_rows();
            return Ok(lines);
        }
        // Each row is one line without raw newlines (strings are escaped), so turning the line
        // breaks into commas yields the array's elements.
        let mut out = Vec::with_capacity(lines.len() + 2);
        if self.rows_written == 0 {
            out.push(b'[');
        }
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if self.rows_written > 0 {
                out.push(b',');
            }
            out.extend_from_slice(line);
            self.rows_written += 1;
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>, RenderError> {
        Ok(match (self.array, self.rows_written) {
            (false, _) => vec![],
            (true, 0) => b"[]".to_vec(),
            (true, _) => b"]".to_vec(),
        })
    }
}
