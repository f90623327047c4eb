//! A table cell as the user reads it, per the column's `format`: datetimes on the tenant's
//! clock, grouped thousands, percentages, bytes, durations.

use serde_json::Value;

use crate::config::ColumnFormat;

/// A cell as the user reads it, per the column's `format`.
pub fn format_cell(cell: &Value, format: Option<ColumnFormat>, tz: chrono_tz::Tz) -> String {
    let number = cell.as_f64();
    match (format, cell) {
        (_, Value::Null) => String::new(),
        (Some(ColumnFormat::Datetime), Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|_| s.clone()),
        (Some(ColumnFormat::Number), _) if number.is_some() => {
            group_thousands(number.unwrap_or_default())
        }
        (Some(ColumnFormat::Percent), _) if number.is_some() => {
            format!("{:.1}%", number.unwrap_or_default())
        }
        (Some(ColumnFormat::Bytes), _) if number.is_some() => bytes(number.unwrap_or_default()),
        (Some(ColumnFormat::Duration), _) if number.is_some() => {
            seconds(number.unwrap_or_default())
        }
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

fn group_thousands(v: f64) -> String {
    let text = if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    };
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

fn bytes(v: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = v;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Seconds as `1h 2m 3s` (sub-second values as milliseconds).
fn seconds(v: f64) -> String {
    if v.abs() < 1.0 {
        return format!("{:.0}ms", v * 1000.0);
    }
    let total = v.round() as i64;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_cells() {
        let tz = chrono_tz::Europe::Paris;
        assert_eq!(
            format_cell(
                &json!("2024-01-01T00:00:00Z"),
                Some(ColumnFormat::Datetime),
                tz
            ),
            "2024-01-01 01:00:00"
        );
        assert_eq!(
            format_cell(&json!(1234567.5), Some(ColumnFormat::Number), tz),
            "1,234,567.50"
        );
        assert_eq!(
            format_cell(&json!(-1000), Some(ColumnFormat::Number), tz),
            "-1,000"
        );
        assert_eq!(
            format_cell(&json!(12.345), Some(ColumnFormat::Percent), tz),
            "12.3%"
        );
        assert_eq!(
            format_cell(&json!(1536), Some(ColumnFormat::Bytes), tz),
            "1.5 KiB"
        );
        assert_eq!(
            format_cell(&json!(3725), Some(ColumnFormat::Duration), tz),
            "1h 2m 5s"
        );
        assert_eq!(
            format_cell(&json!(0.25), Some(ColumnFormat::Duration), tz),
            "250ms"
        );
        assert_eq!(format_cell(&Value::Null, None, tz), "");
        assert_eq!(format_cell(&json!("ERROR"), None, tz), "ERROR");
    }
}
