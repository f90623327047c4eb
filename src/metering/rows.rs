//! The rows one recording adds to a tenant's `opsboard_usage` table: what grew since the last
//! recording (counters) and the stored bytes when they changed (gauges). Pure.

use std::collections::BTreeMap;

use crate::usage::{Counter, Ingested, StoredBytes};

/// The counters as one recording saw them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    pub ingested: BTreeMap<(String, &'static str), Ingested>,
    pub counters: [u64; Counter::ALL.len()],
    pub stored: Option<StoredBytes>,
}

/// One row: `metric`, the table and protocol it is about (empty when none), the amount.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub metric: &'static str,
    pub table: String,
    pub protocol: &'static str,
    pub value: f64,
}

impl UsageRow {
    fn new(metric: &'static str, value: u64) -> Self {
        Self {
            metric,
            table: String::new(),
            protocol: "",
            value: value as f64,
        }
    }
}

/// What `now` adds to `before`: each counter's growth (none when it did not grow) and the
/// stored bytes when they differ from the last recorded.
pub fn grown(before: &Seen, now: &Seen) -> Vec<UsageRow> {
    let mut rows = vec![];
    for ((table, protocol), n) in &now.ingested {
        let was = before
            .ingested
            .get(&(table.clone(), *protocol))
            .copied()
            .unwrap_or_default();
        for (metric, grew) in [
            ("ingested_rows", n.rows.saturating_sub(was.rows)),
            ("ingested_bytes", n.bytes.saturating_sub(was.bytes)),
        ] {
            if grew > 0 {
                rows.push(UsageRow {
                    metric,
                    table: table.clone(),
                    protocol,
                    value: grew as f64,
                });
            }
        }
    }
    for (i, counter) in Counter::ALL.iter().enumerate() {
        let grew = now.counters[i].saturating_sub(before.counters[i]);
        if grew > 0 {
            rows.push(UsageRow::new(counter.name(), grew));
        }
    }
    if let Some(stored) = now.stored
        && before.stored != now.stored
    {
        rows.push(UsageRow::new("storage_parquet_bytes", stored.parquet));
        rows.push(UsageRow::new("storage_wal_bytes", stored.wal));
        rows.push(UsageRow::new(
            "storage_attachment_bytes",
            stored.attachments,
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(rows: u64, queries: u64, parquet: u64) -> Seen {
        let mut counters = [0; Counter::ALL.len()];
        counters[Counter::Queries as usize] = queries;
        Seen {
            ingested: [(
                ("cpu".to_string(), "json"),
                Ingested {
                    rows,
                    bytes: rows * 10,
                },
            )]
            .into(),
            counters,
            stored: Some(StoredBytes {
                parquet,
                ..StoredBytes::default()
            }),
        }
    }

    #[test]
    fn only_growth_is_recorded_and_stored_bytes_when_they_change() {
        let first = grown(&Seen::default(), &seen(5, 2, 100));
        let metrics: Vec<_> = first.iter().map(|r| (r.metric, r.value)).collect();
        assert_eq!(
            metrics,
            [
                ("ingested_rows", 5.0),
                ("ingested_bytes", 50.0),
                ("queries", 2.0),
                ("storage_parquet_bytes", 100.0),
                ("storage_wal_bytes", 0.0),
                ("storage_attachment_bytes", 0.0),
            ]
        );
        assert_eq!(first[0].table, "cpu");
        assert_eq!(first[0].protocol, "json");
        // Nothing grew, nothing changed: no rows.
        assert!(grown(&seen(5, 2, 100), &seen(5, 2, 100)).is_empty());
        let later = grown(&seen(5, 2, 100), &seen(7, 2, 100));
        assert_eq!(later.len(), 2);
        assert_eq!(later[0].value, 2.0);
    }
}
