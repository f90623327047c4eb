//! Decoders from request bodies to Arrow: JSON array, NDJSON and CSV → one RecordBatch with a
//! nanosecond `time` column, dictionary-encoded tags and typed fields. Types come from the
//! table's current (or declared) schema; new columns are inferred (strings → tags, numbers →
//! float fields, booleans → boolean fields). A body is all or nothing: any bad line fails the
//! whole request with every problem found, each naming its line and column. [`Write`] is the
//! one path from a body to storage.

mod arrow_input;
mod attachment;
mod builder;
mod csv;
mod influx;
mod json;
pub mod line_protocol;
pub mod otlp;
mod pipeline;
pub mod prom;
mod series;
mod time;

pub use arrow_input::normalize;
pub use attachment::{AttachmentError, check_attachment};
pub use builder::{BatchBuilder, Value};
pub use influx::{decode_lines, table_name};
pub use pipeline::{Limits, OnExpired, Source, Validated, Write};
pub use time::Precision;

use arrow::record_batch::RecordBatch;
use serde::Serialize;

use crate::storage::TableSchema;

/// Problems past this many are counted, not listed, so a huge bad body gets a small answer.
pub const MAX_DETAILS: usize = 100;

/// One problem at one place of the body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineError {
    /// 1-based line of the body (for a JSON array: the 1-based record number).
    pub line: usize,
    /// The column (field name) at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{count} invalid line(s) in the body; nothing was written", count = .total)]
    InvalidLines {
        details: Vec<LineError>,
        total: usize,
    },
    #[error("{total} line(s) older than the table's retention of {retention}; nothing was written")]
    Expired {
        details: Vec<LineError>,
        total: usize,
        retention: String,
    },
    #[error("the body holds no rows")]
    Empty,
    /// A binary body (protobuf, snappy) that cannot be read at all.
    #[error("{0}; nothing was written")]
    Malformed(String),
    #[error("table `{0}` is written by the server itself; it can be read, not written")]
    SystemTable(String),
    #[error("{what} limit of {limit} reached ({found}); nothing was written")]
    Limit {
        what: String,
        limit: usize,
        found: usize,
    },
    #[error(
        "unsupported content type {0:?}: use application/json, application/x-ndjson or text/csv"
    )]
    UnsupportedFormat(String),
    #[error("invalid precision {0:?}: use s, ms, us or ns")]
    InvalidPrecision(String),
    #[error("invalid on_expired {0:?}: use refuse or drop")]
    InvalidOnExpired(String),
    #[error("building the batch failed: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A later chunk of one write contradicts an earlier one (the `ingest` CLI's chunks).
    #[error(transparent)]
    Schema(#[from] crate::storage::StorageError),
}

/// Body formats the write endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
    Csv,
}

impl Format {
    /// Its name in usage metering (`protocol` label).
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
        }
    }

    /// Picks the format from a Content-Type header; JSON when absent.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self, IngestError> {
        let Some(ct) = content_type else {
            return Ok(Format::Json);
        };
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "" | "application/json" => Ok(Format::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/json-lines" => Ok(Format::Ndjson),
            "text/csv" | "application/csv" => Ok(Format::Csv),
            _ => Err(IngestError::UnsupportedFormat(ct.to_string())),
        }
    }

    /// Picks the format from a file name's extension (the `ingest` CLI).
    pub fn from_extension(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// Decodes a whole body against `schema` (the table's schema as it stands).
pub fn decode(
    format: Format,
    body: &[u8],
    precision: Precision,
    schema: &TableSchema,
) -> Result<RecordBatch, IngestError> {
    let mut builder = BatchBuilder::new(schema, precision);
    decode_into(format, body, &mut builder);
    builder.finish()
}

/// Feeds a whole body to `builder`, row by row.
pub fn decode_into(format: Format, body: &[u8], builder: &mut BatchBuilder) {
    match format {
        Format::Json => json::decode_array(body, builder),
        Format::Ndjson => json::decode_ndjson(body, builder),
        Format::Csv => csv::decode(body, builder),
    }
}

#[cfg(test)]
mod tests;
