//! Pure encoders from Arrow to bytes a client takes away. Each format turns a schema and a
//! sequence of batches into chunks of output, batch by batch, so a large result streams with
//! flat memory. It also draws charts (plotters, SVG) and renders pages (minijinja); it never
//! touches storage or HTTP.

mod action_text;
mod actions_strip;
mod arrow_ipc;
mod chart;
mod csv;
mod fonts;
mod heatmap;
mod html;
mod json;
mod parquet;
mod template;
mod thumbnail;

pub use action_text::{action_environment, check_action_text, render_action_text, row_fields};
pub use actions_strip::{ActionButton, RowAction, RunLine, actions_strip};
pub use chart::{
    ChartSeries, TimeChart, encode_png, escape_html, format_value, parse_color, segments,
    timeseries_png, timeseries_svg,
};
pub use heatmap::{Heatmap, heatmap_svg};
pub use html::{
    APP_JS, FAVICON_SVG, FragmentOptions, Pages, ago, app_css, fragment_environment, link,
    local_time, render_fragment,
};
pub use template::{render_template, render_text, template_environment};
pub use thumbnail::{EDGE as THUMBNAIL_EDGE, thumbnail, type_icon};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("unknown format {0:?}: use json, ndjson, csv, parquet or arrow")]
    UnknownFormat(String),
    #[error("invalid {0}")]
    BadOption(String),
    #[error("encoding failed: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("encoding failed: {0}")]
    Parquet(#[from] ::parquet::errors::ParquetError),
    #[error("rendering failed: {0}")]
    Template(String),
    #[error("{0}")]
    Image(String),
}

/// Output formats of query results and exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Json,
    Ndjson,
    /// CSV with formula-looking text cells quoted (the default).
    Csv,
    /// CSV with every cell as written (`csv_formulas=keep`, for machine consumers).
    CsvRaw,
    Parquet,
    Arrow,
}

impl std::str::FromStr for ExportFormat {
    type Err = RenderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "ndjson" | "jsonl" => Ok(Self::Ndjson),
            "csv" => Ok(Self::Csv),
            "parquet" => Ok(Self::Parquet),
            "arrow" => Ok(Self::Arrow),
            other => Err(RenderError::UnknownFormat(other.to_string())),
        }
    }
}

impl ExportFormat {
    /// CSV cells as written when `csv_formulas` is `keep`; any other format as it is.
    pub fn with_csv_formulas(self, csv_formulas: Option<&str>) -> Result<Self, RenderError> {
        match (self, csv_formulas) {
            (_, None | Some("quote")) => Ok(self),
            (Self::Csv, Some("keep")) => Ok(Self::CsvRaw),
            (_, Some("keep")) => Ok(self),
            (_, Some(other)) => Err(RenderError::BadOption(format!(
                "csv_formulas={other:?}: use quote or keep"
            ))),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Ndjson => "application/x-ndjson",
            Self::Csv | Self::CsvRaw => "text/csv; charset=utf-8",
            Self::Parquet => "application/vnd.apache.parquet",
            Self::Arrow => "application/vnd.apache.arrow.stream",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Ndjson => "ndjson",
            Self::Csv | Self::CsvRaw => "csv",
            Self::Parquet => "parquet",
            Self::Arrow => "arrows",
        }
    }

    /// A fresh encoder for one result.
    pub fn encoder(self, schema: &SchemaRef) -> Result<Box<dyn Encoder>, RenderError> {
        Ok(match self {
            Self::Json => Box::new(json::JsonEncoder::array()),
            Self::Ndjson => Box::new(json::JsonEncoder::lines()),
            Self::Csv => Box::new(csv::CsvEncoder::new(schema, true)),
            Self::CsvRaw => Box::new(csv::CsvEncoder::new(schema, false)),
            Self::Parquet => Box::new(parquet::ParquetEncoder::new(schema)?),
            Self::Arrow => Box::new(arrow_ipc::ArrowEncoder::new(schema)?),
        })
    }
}

/// Turns batches into output chunks. `batch` may return an empty chunk when the format buffers
/// (Parquet row groups); `finish` returns whatever is left, footer included.
pub trait Encoder: Send {
    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, RenderError>;
    fn finish(&mut self) -> Result<Vec<u8>, RenderError>;
}

/// Encodes a whole result at once (tests, small answers).
pub fn encode_all(
    format: ExportFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<u8>, RenderError> {
    let mut encoder = format.encoder(schema)?;
    let mut out = vec![];
    for b in batches {
        out.extend(encoder.batch(b)?);
    }
    out.extend(encoder.finish()?);
    Ok(out)
}

#[cfg(test)]
mod tests;
