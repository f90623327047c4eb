//! CSV results: one header line, then rows; timestamps in RFC 3339. Text cells that a
//! spreadsheet would run as a formula — starting with `=`, `+`, `-`, `@`, a tab or a carriage
//! return — get a leading `'` (OWASP's rule), unless the caller asked for the cells as written
//! (`ExportFormat::CsvRaw`, for machine consumers).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::compute::cast;
use arrow::csv::WriterBuilder;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::{Encoder, RenderError};

pub struct CsvEncoder {
    schema: SchemaRef,
    header_written: bool,
    guard_formulas: bool,
}

impl CsvEncoder {
    pub fn new(schema: &SchemaRef, guard_formulas: bool) -> Self {
        Self {
            schema: schema.clone(),
            header_written: false,
            guard_formulas,
        }
    }
}

/// Whether a spreadsheet would read `cell` as a formula.
fn looks_like_formula(cell: &str) -> bool {
    cell.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

fn is_text(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, value) => is_text(value),
        _ => false,
    }
}

/// `column` with formula-looking cells prefixed by `'`; the same column when none are.
fn guard_column(column: &ArrayRef) -> Result<ArrayRef, RenderError> {
    if !is_text(column.data_type()) {
        return Ok(column.clone());
    }
    let text = cast(column, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    if !text.iter().flatten().any(looks_like_formula) {
        return Ok(column.clone());
    }
    let guarded: StringArray = text
        .iter()
        .map(|cell| {
            cell.map(|c| {
                if looks_like_formula(c) {
                    format!("'{c}")
                } else {
                    c.to_string()
                }
            })
        })
        .collect();
    Ok(Arc::new(guarded))
}

/// The batch with every text column guarded (its schema's text columns become plain strings).
fn guard_batch(batch: &RecordBatch) -> Result<RecordBatch, RenderError> {
    let columns = batch
        .columns()
        .iter()
        .map(guard_column)
        .collect::<Result<Vec<_>, _>>()?;
    if columns
        .iter()
        .zip(batch.columns())
        .all(|(a, b)| Arc::ptr_eq(a, b))
    {
        return Ok(batch.clone());
    }
    let fields: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .zip(&columns)
        .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
        .collect();
    let schema = Arc::new(arrow::datatypes::Schema::new(fields));
    Ok(RecordBatch::try_new(schema, columns)?)
}

impl Encoder for CsvEncoder {
    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, RenderError> {
        let guarded;
        let batch = if self.guard_formulas {
            guarded = guard_batch(batch)?;
            &guarded
        } else {
            batch
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn formulas_are_quoted_unless_asked_for_as_written() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("cell", DataType::Utf8, true),
            Field::new("n", DataType::Float64, true),
        ]));
        let cells = StringArray::from(vec![
            Some("=HYPERLINK(\"http://evil\")"),
            Some("+1"),
            Some("-2+3"),
            Some("@SUM(A1)"),
            Some("\tx"),
            Some("plain"),
            None,
        ]);
        let numbers = arrow::array::Float64Array::from(vec![-1.5; 7]);
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(cells), Arc::new(numbers)]).unwrap();
        let mut guarded = CsvEncoder::new(&schema, true);
        let text = String::from_utf8(guarded.batch(&batch).unwrap()).unwrap();
        assert!(
            text.contains("\"'=HYPERLINK(\"\"http://evil\"\")\""),
            "{text}"
        );
        assert!(
            text.contains("'+1,-1.5") && text.contains("'-2+3,"),
            "{text}"
        );
        assert!(
            text.contains("'@SUM(A1),") && text.contains("plain,-1.5"),
            "{text}"
        );
        let mut raw = CsvEncoder::new(&schema, false);
        let text = String::from_utf8(raw.batch(&batch).unwrap()).unwrap();
        assert!(text.contains("\n+1,-1.5\n"), "{text}");
    }
}
