//! `rollups:` of a table in tenant.yaml: pre-aggregated copies of the table (sum, count, min and
//! max per field, per interval bucket and group-by tags) that the storage keeps at each flush and
//! that queries whose buckets and aggregates they can answer exactly read instead of raw rows.

use serde::{Deserialize, Serialize};

use super::{HumanDuration, Step};
use crate::schema::FieldType;

/// The aggregates a rollup can answer exactly from its stored sums, counts, minimums and maximums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RollupAggregate {
    Avg,
    Min,
    Max,
    Sum,
    Count,
}

impl RollupAggregate {
    pub const ALL: [RollupAggregate; 5] = [Self::Avg, Self::Min, Self::Max, Self::Sum, Self::Count];
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RollupConfig {
    /// Bucket widths kept, each dividing a day (`1m`, `1h`); a query's bucket must be a multiple.
    pub intervals: Vec<HumanDuration>,
    /// The tags rows are grouped by; queries may group and filter by these only.
    pub group_by: Vec<String>,
    /// Numeric fields kept; empty means every declared float or integer field.
    pub fields: Vec<String>,
    /// What queries may ask for; empty means all five.
    pub aggregates: Vec<RollupAggregate>,
    /// How long rollup rows are kept: at least the table's own retention (the default).
    pub retention: Option<HumanDuration>,
}

/// Seconds in a day: every interval divides it, so no bucket straddles two days' files.
const DAY_SECS: u64 = 86_400;

impl RollupConfig {
    /// The problems of this declaration (found at `at`) for a table with `tags` and `fields`,
    /// each with the key path it is about (below the declaration) and a message naming that key.
    pub fn problems(
        &self,
        at: &str,
        tags: &[String],
        fields: &std::collections::BTreeMap<String, FieldType>,
        table_retention: Option<HumanDuration>,
    ) -> Vec<(Vec<Step>, String)> {
        let mut problems = Problems::default();
        if self.intervals.is_empty() {
            problems.push(
                &["intervals"],
                None,
                format!("{at}.intervals: at least one interval is needed"),
            );
        }
        for (i, interval) in self.intervals.iter().enumerate() {
            let d = interval.0;
            if d.subsec_nanos() != 0 || d.as_secs() == 0 || !DAY_SECS.is_multiple_of(d.as_secs()) {
                problems.push(&["intervals"], Some(i), format!(
                    "{at}.intervals[{i}]: {} must be whole seconds dividing a day (1m, 5m, 1h, 1d)",
                    humantime::format_duration(d)
                ));
            }
            if self.intervals[..i].contains(interval) {
                problems.push(
                    &["intervals"],
                    Some(i),
                    format!("{at}.intervals[{i}]: listed twice"),
                );
            }
        }
        for (i, tag) in self.group_by.iter().enumerate() {
            if !tags.contains(tag) {
                problems.push(
                    &["group_by"],
                    Some(i),
                    format!("{at}.group_by[{i}]: {tag:?} is not one of the table's tags"),
                );
            }
        }
        for (i, field) in self.fields.iter().enumerate() {
            match fields.get(field) {
                Some(FieldType::Float | FieldType::Integer | FieldType::UInteger) => {}
                Some(other) => problems.push(
                    &["fields"],
                    Some(i),
                    format!(
                        "{at}.fields[{i}]: {field:?} is {other:?}; only numeric fields roll up"
                    ),
                ),
                None => problems.push(
                    &["fields"],
                    Some(i),
                    format!("{at}.fields[{i}]: {field:?} is not a declared field of the table"),
                ),
            }
        }
        if self.fields.is_empty() && numeric_fields(fields).is_empty() {
            problems.push(
                &[],
                None,
                format!("{at}: the table declares no numeric field to roll up"),
            );
        }
        if let (Some(own), Some(table)) = (self.retention, table_retention)
            && own < table
        {
            problems.push(&["retention"], None, format!(
                "{at}.retention: shorter than the table's ({}); rollups must outlive the raw rows",
                humantime::format_duration(table.0)
            ));
        }
        problems.0
    }

    /// The fields kept, in a stable order.
    pub fn fields_of(
        &self,
        fields: &std::collections::BTreeMap<String, FieldType>,
    ) -> Vec<(String, FieldType)> {
        if self.fields.is_empty() {
            return numeric_fields(fields);
        }
        self.fields
            .iter()
            .filter_map(|f| fields.get(f).map(|t| (f.clone(), *t)))
            .collect()
    }

    pub fn allows(&self, aggregate: RollupAggregate) -> bool {
        self.aggregates.is_empty() || self.aggregates.contains(&aggregate)
    }
}

/// Problems with where they are: steps below the `rollups` key, then the message.
#[derive(Default)]
struct Problems(Vec<(Vec<Step>, String)>);

impl Problems {
    fn push(&mut self, keys: &[&str], index: Option<usize>, message: String) {
        let mut steps: Vec<Step> = keys.iter().map(|k| Step::from(*k)).collect();
        steps.extend(index.map(Step::from));
        self.0.push((steps, message));
    }
}

fn numeric_fields(
    fields: &std::collections::BTreeMap<String, FieldType>,
) -> Vec<(String, FieldType)> {
    fields
        .iter()
        .filter(|(_, t)| {
            matches!(
                t,
                FieldType::Float | FieldType::Integer | FieldType::UInteger
            )
        })
        .map(|(f, t)| (f.clone(), *t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn fields() -> BTreeMap<String, FieldType> {
        BTreeMap::from([
            ("usage".to_string(), FieldType::Float),
            ("note".to_string(), FieldType::String),
        ])
    }

    #[test]
    fn each_mistake_names_its_key() {
        let config: RollupConfig = serde_yaml::from_str(
            "{intervals: [7m, 1m, 1m], group_by: [host, nope], fields: [note, gone], retention: 1d}",
        )
        .unwrap();
        let problems = config.problems(
            "tables.cpu.rollups",
            &["host".to_string()],
            &fields(),
            Some(HumanDuration::from_secs(7 * 86_400)),
        );
        let text: Vec<String> = problems.into_iter().map(|(_, m)| m).collect();
        let text = text.join("\n");
        for expected in [
            "tables.cpu.rollups.intervals[0]: 7m must be whole seconds dividing a day",
            "tables.cpu.rollups.intervals[2]: listed twice",
            "tables.cpu.rollups.group_by[1]: \"nope\" is not one of the table's tags",
            "tables.cpu.rollups.fields[0]: \"note\" is String; only numeric fields roll up",
            "tables.cpu.rollups.fields[1]: \"gone\" is not a declared field",
            "tables.cpu.rollups.retention: shorter than the table's (7days)",
        ] {
            assert!(text.contains(expected), "{expected} missing from:\n{text}");
        }
    }

    #[test]
    fn defaults_keep_every_numeric_field_and_aggregate() {
        let config: RollupConfig = serde_yaml::from_str("{intervals: [1m, 1h]}").unwrap();
        assert!(
            config
                .problems("tables.cpu.rollups[0]", &[], &fields(), None)
                .is_empty()
        );
        assert_eq!(
            config.fields_of(&fields()),
            vec![("usage".to_string(), FieldType::Float)]
        );
        assert!(RollupAggregate::ALL.iter().all(|a| config.allows(*a)));
    }
}
