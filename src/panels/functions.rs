//! The Rust functions custom panels name, registered by name. A `custom_image` panel names an
//! [`ImageFunction`] in `endpoint`; a `custom_template` panel may fill its template with the
//! JSON of a [`DataFunction`]. The built-ins are `cpu_heatmap` (a plotters heatmap of a value
//! by host × time) and `table_summary` (rows and time bounds of every table).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Value, json};

use super::values::{floats, texts, timestamps_ns};
use super::{Bucket, PanelError, Run, sqlgen};
use crate::render::{Heatmap, RenderError, heatmap_svg};

/// Draws a panel image. Returns (content type, bytes).
#[async_trait]
pub trait ImageFunction: Send + Sync {
    async fn render(&self, run: &Run<'_>) -> Result<(String, Bytes), String>;
}

/// Supplies a template's data as a JSON object.
#[async_trait]
pub trait DataFunction: Send + Sync {
    async fn data(&self, run: &Run<'_>) -> Result<Value, String>;
}

/// Functions by name.
#[derive(Clone, Default)]
pub struct Registry {
    images: BTreeMap<&'static str, Arc<dyn ImageFunction>>,
    data: BTreeMap<&'static str, Arc<dyn DataFunction>>,
}

impl Registry {
    pub fn builtin() -> Self {
        let mut registry = Self::default();
        registry.register_image("cpu_heatmap", Arc::new(CpuHeatmap));
        registry.register_data("table_summary", Arc::new(TableSummary));
        registry
    }

    pub fn register_image(&mut self, name: &'static str, f: Arc<dyn ImageFunction>) {
        self.images.insert(name, f);
    }

    pub fn register_data(&mut self, name: &'static str, f: Arc<dyn DataFunction>) {
        self.data.insert(name, f);
    }

    pub fn image_names(&self) -> Vec<&'static str> {
        self.images.keys().copied().collect()
    }

    pub fn data_names(&self) -> Vec<&'static str> {
        self.data.keys().copied().collect()
    }

    /// The image function `name`, or an error naming the panel.
    pub fn image(&self, run: &Run<'_>, name: &str) -> Result<Arc<dyn ImageFunction>, PanelError> {
        self.images
            .get(name)
            .cloned()
            .ok_or_else(|| function_error(run, format!("no image function `{name}`")))
    }

    /// The data function `name`, or an error naming the panel.
    pub fn data(&self, run: &Run<'_>, name: &str) -> Result<Arc<dyn DataFunction>, PanelError> {
        self.data
            .get(name)
            .cloned()
            .ok_or_else(|| function_error(run, format!("no data function `{name}`")))
    }
}

/// A function's own failure, naming the panel.
pub fn function_error(run: &Run<'_>, message: String) -> PanelError {
    PanelError::Function {
        panel: run.panel.id.clone(),
        message,
    }
}

/// A parameter naming a column, checked against the table's live schema before use.
fn column_param(run: &Run<'_>, table: &str, key: &str, default: &str) -> Result<String, String> {
    let name = run
        .panel
        .config
        .parameters
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_string();
    let schema = run
        .store
        .table(table)
        .map(|t| t.schema())
        .ok_or_else(|| format!("no table `{table}`"))?;
    if schema.kind_of(&name).is_none() {
        return Err(format!(
            "parameter `{key}`: no column `{name}` in `{table}`"
        ));
    }
    Ok(name)
}

/// Heatmap of `value` (default `usage_user`) by `row` (default `hostname`) × time bucket over
/// `table` (default `cpu`): at most 48 columns, an hour wide or more, on the tenant's clock.
struct CpuHeatmap;

#[async_trait]
impl ImageFunction for CpuHeatmap {
    async fn render(&self, run: &Run<'_>) -> Result<(String, Bytes), String> {
        let parameters = &run.panel.config.parameters;
        let table = parameters
            .get("table")
            .and_then(Value::as_str)
            .unwrap_or("cpu")
            .to_string();
        let value = column_param(run, &table, "value", "usage_user")?;
        let row = column_param(run, &table, "row", "hostname")?;
        let max_rows = parameters
            .get("max_rows")
            .and_then(Value::as_u64)
            .unwrap_or(20) as usize;
        let span = run.range.span();
        let every = [1u64, 3, 6, 12, 24, 168]
            .iter()
            .map(|h| Duration::from_secs(h * 3600))
            .find(|d| span.as_nanos().div_ceil(d.as_nanos()) <= 48)
            .unwrap_or(Duration::from_secs(168 * 3600));
        let params = sqlgen::base_params(
            run,
            run.range.from_ns,
            run.range.to_ns,
            Bucket::Every(every),
        );
        let sql = format!(
            "SELECT CAST({r} AS VARCHAR) AS row_label, date_bin($bucket, time, $origin) AS time, \
             avg({v}) AS value FROM {t} WHERE time >= $from AND time < $to GROUP BY 1, 2 ORDER BY 1, 2",
            r = sqlgen::ident(&row),
            v = sqlgen::ident(&value),
            t = sqlgen::ident(&table),
        );
        let batches = run
            .engine
            .collect_with_params(run.store, &sql, &params)
            .await
            .map_err(|e| e.to_string())?;
        let labels = texts(&batches, "row_label").unwrap_or_default();
        let times = timestamps_ns(&batches, "time").unwrap_or_default();
        let values = floats(&batches, "value").unwrap_or_default();
        let origin = sqlgen::origin_ns(run.range.from_ns, run.tenant.timezone);
        let step = every.as_nanos() as i64;
        let first = origin + (run.range.from_ns - origin).div_euclid(step) * step;
        let columns = ((run.range.to_ns - first) as u128)
            .div_ceil(step as u128)
            .max(1) as usize;
        let mut rows: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
        for ((label, time), value) in labels.iter().zip(&times).zip(&values) {
            let (Some(label), Some(time)) = (label, time) else {
                continue;
            };
            let index = ((time - first) / step) as usize;
            let cells = rows
                .entry(label.clone())
                .or_insert_with(|| vec![None; columns]);
            if let Some(cell) = cells.get_mut(index) {
                *cell = *value;
            }
        }
        let tz = run.tenant.timezone;
        let format = if every >= Duration::from_secs(86_400) {
            "%m-%d"
        } else {
            "%d %H:00"
        };
        let column_labels = (0..columns)
            .map(|i| {
                let t = first + i as i64 * step;
                chrono::TimeZone::timestamp_nanos(&tz, t)
                    .format(format)
                    .to_string()
            })
            .collect();
        let rows: Vec<(String, Vec<Option<f64>>)> = rows.into_iter().take(max_rows).collect();
        let map = Heatmap {
            title: format!(
                "{} by {} × {}",
                value,
                row,
                crate::config::HumanDuration(every)
            ),
            row_labels: rows.iter().map(|(l, _)| l.clone()).collect(),
            column_labels,
            cells: rows.into_iter().map(|(_, c)| c).collect(),
        };
        let width = run.panel.config.display.width.unwrap_or(720);
        let height = run.panel.config.display.height.unwrap_or(360);
        let draw = move || heatmap_svg(&map, width, height).map_err(RenderError::Template);
        let svg = super::render_pool::off_workers(draw)
            .await
            .map_err(|e| e.to_string())?;
        Ok(("image/svg+xml".into(), Bytes::from(svg)))
    }
}

/// `{tables: [{name, rows, buffered_rows, min_time, max_time}], total_rows}` from the store's
/// own statistics (no query).
struct TableSummary;

#[async_trait]
impl DataFunction for TableSummary {
    async fn data(&self, run: &Run<'_>) -> Result<Value, String> {
        let mut total = 0u64;
        let mut tables = vec![];
        for table in run.store.tables() {
            let stats = table.stats();
            let rows = stats.buffered_rows + stats.persisted_rows;
            total += rows;
            tables.push(json!({
                "name": stats.name,
                "rows": rows,
                "buffered_rows": stats.buffered_rows,
                "min_time": stats.min_time.map(super::values::rfc3339),
                "max_time": stats.max_time.map(super::values::rfc3339),
            }));
        }
        Ok(json!({ "tables": tables, "total_rows": total }))
    }
}
