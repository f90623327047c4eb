//! Column-wise assembly of decoded rows into one RecordBatch. Decoders feed it row by row;
//! it checks each value against the column's kind (from the table schema, or fixed by the first
//! value of a new column), pads absent values with nulls and records every problem.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    StringDictionaryBuilder, TimestampNanosecondArray, UInt64Builder,
};
use arrow::datatypes::{Field, Int32Type, Schema};
use arrow::record_batch::RecordBatch;

use super::time::{Precision, parse_rfc3339};
use super::{IngestError, LineError, MAX_DETAILS};
use crate::storage::{ColumnKind, FieldType, TIME_COLUMN, TableSchema};

/// A decoded value before it meets its column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(std::borrow::Cow<'a, str>),
}

impl Value<'_> {
    fn describe(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::UInt(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
        }
    }

    /// The kind a new column takes from its first value.
    fn inferred_kind(&self) -> Option<ColumnKind> {
        match self {
            Value::Null => None,
            Value::Bool(_) => Some(ColumnKind::Field(FieldType::Boolean)),
            Value::Int(_) | Value::UInt(_) | Value::Float(_) => {
                Some(ColumnKind::Field(FieldType::Float))
            }
            Value::Str(_) => Some(ColumnKind::Tag),
        }
    }
}

enum ColumnBuilder {
    Tag(StringDictionaryBuilder<Int32Type>),
    Float(Float64Builder),
    Integer(Int64Builder),
    UInteger(UInt64Builder),
    Boolean(BooleanBuilder),
    String(StringBuilder),
}

impl ColumnBuilder {
    fn new(kind: ColumnKind) -> Self {
        match kind {
            ColumnKind::Tag | ColumnKind::Time => {
                ColumnBuilder::Tag(StringDictionaryBuilder::new())
            }
            ColumnKind::Field(FieldType::Float) => ColumnBuilder::Float(Float64Builder::new()),
            ColumnKind::Field(FieldType::Integer) => ColumnBuilder::Integer(Int64Builder::new()),
            ColumnKind::Field(FieldType::UInteger) => ColumnBuilder::UInteger(UInt64Builder::new()),
            ColumnKind::Field(FieldType::Boolean) => ColumnBuilder::Boolean(BooleanBuilder::new()),
            ColumnKind::Field(FieldType::String) => ColumnBuilder::String(StringBuilder::new()),
        }
    }

    fn len(&self) -> usize {
        use arrow::array::ArrayBuilder;
        match self {
            ColumnBuilder::Tag(b) => b.len(),
            ColumnBuilder::Float(b) => b.len(),
            ColumnBuilder::Integer(b) => b.len(),
            ColumnBuilder::UInteger(b) => b.len(),
            ColumnBuilder::Boolean(b) => b.len(),
            ColumnBuilder::String(b) => b.len(),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Tag(b) => b.append_null(),
            ColumnBuilder::Float(b) => b.append_null(),
            ColumnBuilder::Integer(b) => b.append_null(),
            ColumnBuilder::UInteger(b) => b.append_null(),
            ColumnBuilder::Boolean(b) => b.append_null(),
            ColumnBuilder::String(b) => b.append_null(),
        }
    }

    /// Appends `value`, or says why it does not fit.
    fn append(&mut self, value: &Value<'_>) -> Result<(), String> {
        match (self, value) {
            (b, Value::Null) => b.append_null(),
            (ColumnBuilder::Tag(b), Value::Str(s)) => b.append_value(s.as_ref()),
            // Tags are labels: a number or boolean written for one is kept as its text.
            (ColumnBuilder::Tag(b), Value::Int(v)) => b.append_value(v.to_string()),
            (ColumnBuilder::Tag(b), Value::UInt(v)) => b.append_value(v.to_string()),
            (ColumnBuilder::Tag(b), Value::Float(v)) => b.append_value(v.to_string()),
            (ColumnBuilder::Tag(b), Value::Bool(v)) => b.append_value(v.to_string()),
            (ColumnBuilder::Float(b), Value::Float(v)) => b.append_value(*v),
            (ColumnBuilder::Float(b), Value::Int(v)) => b.append_value(*v as f64),
            (ColumnBuilder::Float(b), Value::UInt(v)) => b.append_value(*v as f64),
            (ColumnBuilder::Integer(b), Value::Int(v)) => b.append_value(*v),
            (ColumnBuilder::Integer(b), Value::UInt(v)) => b.append_value(
                i64::try_from(*v).map_err(|_| format!("{v} does not fit an integer field"))?,
            ),
            (ColumnBuilder::Integer(b), Value::Float(v))
                if v.fract() == 0.0 && v.abs() < 9.0e15 =>
            {
                b.append_value(*v as i64)
            }
            (ColumnBuilder::UInteger(b), Value::UInt(v)) => b.append_value(*v),
            (ColumnBuilder::UInteger(b), Value::Int(v)) => b.append_value(
                u64::try_from(*v).map_err(|_| format!("{v} does not fit a uinteger field"))?,
            ),
            (ColumnBuilder::UInteger(b), Value::Float(v))
                if v.fract() == 0.0 && *v >= 0.0 && *v < 1.8e19 =>
            {
                b.append_value(*v as u64)
            }
            (ColumnBuilder::Boolean(b), Value::Bool(v)) => b.append_value(*v),
            (ColumnBuilder::String(b), Value::Str(s)) => b.append_value(s.as_ref()),
            (b, v) => {
                return Err(format!("expected {}, got {}", b.describe(), v.describe()));
            }
        }
        Ok(())
    }

    fn describe(&self) -> &'static str {
        match self {
            ColumnBuilder::Tag(_) => "a tag (string)",
            ColumnBuilder::Float(_) => "a float",
            ColumnBuilder::Integer(_) => "an integer",
            ColumnBuilder::UInteger(_) => "an unsigned integer",
            ColumnBuilder::Boolean(_) => "a boolean",
            ColumnBuilder::String(_) => "a string",
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Tag(b) => Arc::new(b.finish()),
            ColumnBuilder::Float(b) => Arc::new(b.finish()),
            ColumnBuilder::Integer(b) => Arc::new(b.finish()),
            ColumnBuilder::UInteger(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::String(b) => Arc::new(b.finish()),
        }
    }
}

struct ColumnState {
    name: String,
    kind: ColumnKind,
    builder: ColumnBuilder,
}

fn conflict(name: &str, have: ColumnKind, given: ColumnKind) -> String {
    format!(
        "column {name:?} holds {}, this line gives {}",
        kind_name(have),
        kind_name(given)
    )
}

fn kind_name(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Tag => "a tag",
        ColumnKind::Time => "the time",
        ColumnKind::Field(FieldType::Float) => "floats",
        ColumnKind::Field(FieldType::Integer) => "integers",
        ColumnKind::Field(FieldType::UInteger) => "unsigned integers",
        ColumnKind::Field(FieldType::Boolean) => "booleans",
        ColumnKind::Field(FieldType::String) => "strings",
    }
}

/// Accumulates rows into columns; see the module doc.
pub struct BatchBuilder {
    known: TableSchema,
    precision: Precision,
    index: HashMap<String, usize>,
    columns: Vec<ColumnState>,
    times: Vec<i64>,
    /// Rows ended so far; the current row's index.
    completed: usize,
    row_has_time: bool,
    line: usize,
    errors: Vec<LineError>,
    error_count: usize,
    /// Rows older than this (epoch ns) are past the table's retention.
    oldest_ns: Option<i64>,
    /// (row, line) of each such row.
    expired: Vec<(usize, usize)>,
    max_tag_bytes: usize,
    /// The column the next value most likely belongs to (see `column_index`).
    next_guess: usize,
}

impl BatchBuilder {
    pub fn new(known: &TableSchema, precision: Precision) -> Self {
        Self {
            known: known.clone(),
            precision,
            index: HashMap::new(),
            columns: vec![],
            times: vec![],
            completed: 0,
            row_has_time: false,
            line: 0,
            errors: vec![],
            error_count: 0,
            oldest_ns: None,
            expired: vec![],
            max_tag_bytes: usize::MAX,
            next_guess: 0,
        }
    }

    /// Refuses tag values longer than `bytes` (`ingest.max_tag_bytes`).
    pub fn with_max_tag_bytes(mut self, bytes: usize) -> Self {
        self.max_tag_bytes = bytes;
        self
    }

    /// Marks rows older than `oldest_ns` as expired (see [`Self::finish_within`]).
    pub fn with_oldest(mut self, oldest_ns: Option<i64>) -> Self {
        self.oldest_ns = oldest_ns;
        self
    }

    pub fn rows(&self) -> usize {
        self.completed
    }

    /// The kind `name` has or would get, for decoders (CSV) that must parse text by type.
    pub fn kind_of(&self, name: &str) -> Option<ColumnKind> {
        self.index
            .get(name)
            .map(|i| self.columns[*i].kind)
            .or_else(|| self.known.kind_of(name))
    }

    pub fn begin_row(&mut self, line: usize) {
        self.line = line;
        self.next_guess = 0;
        self.row_has_time = false;
    }

    /// Records a problem at the current line.
    pub fn error(&mut self, column: Option<&str>, message: impl Into<String>) {
        self.error_at(self.line, column, message);
    }

    pub fn error_at(&mut self, line: usize, column: Option<&str>, message: impl Into<String>) {
        self.error_count += 1;
        if self.errors.len() < MAX_DETAILS {
            self.errors.push(LineError {
                line,
                column: column.map(str::to_string),
                message: message.into(),
            });
        }
    }

    pub fn has_errors(&self) -> bool {
        self.error_count > 0
    }

    /// Sets one value of the current row.
    pub fn set(&mut self, name: &str, value: Value<'_>) {
        self.set_with(name, value, None);
    }

    /// Sets a value whose column kind the format states (line protocol: tag, `1i` integer,
    /// quoted string…): a new column takes it, an existing column of another kind is an error
    /// naming both — no silent conversion.
    pub fn set_typed(&mut self, name: &str, kind: ColumnKind, value: Value<'_>) {
        self.set_with(name, value, Some(kind));
    }

    fn set_with(&mut self, name: &str, value: Value<'_>, stated: Option<ColumnKind>) {
        if name == TIME_COLUMN {
            return self.set_time(value);
        }
        let idx = match self.column_index(name) {
            Some(i) => i,
            None => match self.new_column(name, &value, stated) {
                Some(i) => i,
                None => return,
            },
        };
        let row = self.completed;
        let col = &self.columns[idx];
        if let Some(stated) = stated
            && col.kind != stated
        {
            let message = conflict(name, col.kind, stated);
            return self.error(Some(name), message);
        }
        if col.builder.len() > row {
            return self.error(Some(name), "column given twice in one row");
        }
        if col.kind == ColumnKind::Tag
            && let Value::Str(text) = &value
            && text.len() > self.max_tag_bytes
        {
            let message = format!(
                "a tag value of {} bytes; tags hold at most {} (ingest.max_tag_bytes): \
                 keep long text in a string field",
                text.len(),
                self.max_tag_bytes
            );
            return self.error(Some(name), message);
        }
        self.next_guess = idx + 1;
        let col = &mut self.columns[idx];
        while col.builder.len() < row {
            col.builder.append_null();
        }
        if let Err(message) = col.builder.append(&value) {
            let message = format!("column {name:?}: {message}");
            self.error(Some(name), message);
        }
    }

    /// Where `name`'s column is: first the one after the column set last (the rows of a body
    /// usually give their columns in one order, so this is a string comparison, not a hash).
    fn column_index(&self, name: &str) -> Option<usize> {
        match self.columns.get(self.next_guess) {
            Some(col) if col.name == name => Some(self.next_guess),
            _ => self.index.get(name).copied(),
        }
    }

    /// A column this batch has not seen: its kind from the table's schema, else as stated,
    /// else from the value; `None` (with the problem recorded, if any) when there is none.
    fn new_column(
        &mut self,
        name: &str,
        value: &Value<'_>,
        stated: Option<ColumnKind>,
    ) -> Option<usize> {
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            self.error(
                Some(name),
                "column names must be 1-256 printable characters",
            );
            return None;
        }
        let known = self.known.kind_of(name);
        if let (Some(have), Some(stated)) = (known, stated)
            && have != stated
        {
            self.error(Some(name), conflict(name, have, stated));
            return None;
        }
        // A null for a column nobody has defined yet: nothing to store.
        let kind = known.or(stated).or_else(|| value.inferred_kind())?;
        self.columns.push(ColumnState {
            name: name.to_string(),
            kind,
            builder: ColumnBuilder::new(kind),
        });
        self.index.insert(name.to_string(), self.columns.len() - 1);
        Some(self.columns.len() - 1)
    }

    fn set_time(&mut self, value: Value<'_>) {
        if self.row_has_time {
            return self.error(Some(TIME_COLUMN), "column given twice in one row");
        }
        let parsed = match &value {
            Value::Str(s) => parse_rfc3339(s),
            Value::Int(v) => self.precision.epoch_to_nanos(*v),
            Value::UInt(v) => i64::try_from(*v)
                .map_err(|_| format!("epoch {v} is out of range"))
                .and_then(|v| self.precision.epoch_to_nanos(v)),
            Value::Float(v) => Err(format!(
                "time {v} must be an integer epoch or an RFC 3339 string"
            )),
            Value::Bool(_) | Value::Null => Err(format!(
                "time must be an integer epoch or an RFC 3339 string, got {}",
                value.describe()
            )),
        };
        match parsed {
            Ok(ns) => {
                self.row_has_time = true;
                self.times.push(ns);
                if self.oldest_ns.is_some_and(|oldest| ns < oldest) {
                    self.expired.push((self.completed, self.line));
                }
            }
            Err(message) => {
                // Keep columns aligned: the row still counts, the request fails anyway.
                self.row_has_time = true;
                self.times.push(0);
                self.error(Some(TIME_COLUMN), message);
            }
        }
    }

    /// Ends the current row; a row without `time` is an error.
    pub fn end_row(&mut self) {
        if !self.row_has_time {
            self.error(Some(TIME_COLUMN), "missing `time`");
            self.times.push(0);
        }
        self.completed += 1;
    }

    /// Ends a row whose text could not be parsed (its problem is already recorded).
    pub fn end_row_after_error(&mut self) {
        if !self.row_has_time {
            self.times.push(0);
        }
        self.completed += 1;
    }

    /// The batch and how many expired rows were dropped from it. Rows past the retention make
    /// the whole body fail with their lines ([`IngestError::Expired`]), unless `drop_expired`.
    pub fn finish_within(
        mut self,
        retention: &str,
        drop_expired: bool,
    ) -> Result<(RecordBatch, usize), IngestError> {
        let expired = std::mem::take(&mut self.expired);
        let batch = self.finish()?;
        if expired.is_empty() {
            return Ok((batch, 0));
        }
        if !drop_expired {
            let details = expired
                .iter()
                .take(MAX_DETAILS)
                .map(|(_, line)| LineError {
                    line: *line,
                    column: Some(TIME_COLUMN.into()),
                    message: format!(
                        "older than the table's retention of {retention}: it would be dropped \
                         at the next maintenance (`on_expired=drop` writes the other rows)"
                    ),
                })
                .collect();
            return Err(IngestError::Expired {
                details,
                total: expired.len(),
                retention: retention.to_string(),
            });
        }
        let mut keep = vec![true; batch.num_rows()];
        for (row, _) in &expired {
            keep[*row] = false;
        }
        let kept = arrow::compute::filter_record_batch(&batch, &BooleanArray::from(keep))?;
        Ok((kept, expired.len()))
    }

    /// The batch, or every problem found.
    pub fn finish(mut self) -> Result<RecordBatch, IngestError> {
        if self.error_count > 0 {
            return Err(IngestError::InvalidLines {
                details: self.errors,
                total: self.error_count,
            });
        }
        let rows = self.times.len();
        if rows == 0 {
            return Err(IngestError::Empty);
        }
        let mut fields = vec![Field::new(TIME_COLUMN, ColumnKind::Time.data_type(), false)];
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(
            TimestampNanosecondArray::from(std::mem::take(&mut self.times)).with_timezone("UTC"),
        )];
        for col in &mut self.columns {
            while col.builder.len() < rows {
                col.builder.append_null();
            }
            fields.push(Field::new(&col.name, col.kind.data_type(), true));
            arrays.push(col.builder.finish());
        }
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
    }
}
