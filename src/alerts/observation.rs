//! What a threshold rule's answer says: one observation per alert instance — a value, its
//! labels and the row it came from — taken from SQL rows (the `value` column; every other
//! column a label) or from a panel's typed answer.

use datafusion::arrow::record_batch::RecordBatch;
use serde_json::{Value, json};

use super::state::Labels;
use crate::panels::{PanelAnswer, values};

/// One alert instance's reading.
#[derive(Clone)]
pub(super) struct Observation {
    pub labels: Labels,
    pub value: f64,
    pub row: serde_json::Map<String, Value>,
}

/// Each row with a numeric `value`, its other non-null columns as labels.
pub(super) fn sql_observations(batches: &[RecordBatch]) -> Vec<Observation> {
    let columns = values::column_names(batches);
    let mut out = vec![];
    for row in values::json_rows(batches) {
        let row: serde_json::Map<String, Value> = columns.iter().cloned().zip(row).collect();
        let Some(value) = row.get("value").and_then(as_number) else {
            continue;
        };
        let labels = row
            .iter()
            .filter(|(k, _)| k.as_str() != "value")
            .filter_map(|(k, v)| label_text(v).map(|t| (k.clone(), t)))
            .collect();
        out.push(Observation { labels, value, row });
    }
    out
}

/// A cell as a number: numbers as they are, timestamps (RFC 3339 text) as epoch milliseconds.
fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(*b as u8 as f64),
        Value::String(s) => s.parse::<f64>().ok().or_else(|| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.timestamp_millis() as f64)
        }),
        _ => None,
    }
}

fn label_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A kpi's value (no labels) or each timeseries series' last point (label `series`).
pub(super) fn panel_observations(answer: &PanelAnswer) -> Vec<Observation> {
    match answer {
        PanelAnswer::Kpi(kpi) => kpi
            .value
            .map(|value| Observation {
                labels: Labels::new(),
                value,
                row: serde_json::Map::new(),
            })
            .into_iter()
            .collect(),
        PanelAnswer::Timeseries(chart) => chart
            .series
            .iter()
            .filter_map(|series| {
                let value =
                    (series.points.iter().rev()).find_map(|p| p.value.filter(|v| v.is_finite()))?;
                let mut row = serde_json::Map::new();
                row.insert("series".into(), json!(series.name));
                Some(Observation {
                    labels: [("series".to_string(), series.name.clone())].into(),
                    value,
                    row,
                })
            })
            .collect(),
        _ => vec![],
    }
}
