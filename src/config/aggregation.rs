//! Aggregation rules (server default in opsboard.yaml, overrides in tenant.yaml and panels):
//! which time bucket a range gets. Rules are ordered by `up_to`; the first rule whose `up_to`
//! covers the range wins, and the last rule has no `up_to` (everything longer). Defaults are
//! seed 003's; the server config, a tenant and a panel may each replace the list. A
//! max-points-per-series guard widens the bucket when a long range would still return too many
//! points.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::HumanDuration;

/// Raw rows, or one aggregated point per bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Raw,
    Every(Duration),
}

impl Serialize for Bucket {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Bucket::Raw => s.serialize_str("raw"),
            Bucket::Every(d) => HumanDuration(*d).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Bucket {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim() == "raw" {
            return Ok(Bucket::Raw);
        }
        let HumanDuration(every) = text.parse().map_err(serde::de::Error::custom)?;
        if every.is_zero() {
            return Err(serde::de::Error::custom(
                "a bucket must be longer than zero (or `raw`)",
            ));
        }
        Ok(Bucket::Every(every))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationRule {
    /// Ranges up to and including this long use `bucket`; absent on the last rule.
    #[serde(default)]
    pub up_to: Option<HumanDuration>,
    pub bucket: Bucket,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AggregationRules {
    pub rules: Vec<AggregationRule>,
    /// Upper bound on points per series; the bucket widens (1 s, 5 s, … 1 d) to stay under it.
    pub max_points_per_series: usize,
}

impl Default for AggregationRules {
    fn default() -> Self {
        let rule = |up_to: Option<u64>, bucket: Bucket| AggregationRule {
            up_to: up_to.map(HumanDuration::from_secs),
            bucket,
        };
        Self {
            rules: vec![
                rule(Some(8 * 3600), Bucket::Raw),
                rule(Some(86_400), Bucket::Every(Duration::from_secs(60))),
                rule(Some(4 * 86_400), Bucket::Every(Duration::from_secs(600))),
                rule(None, Bucket::Every(Duration::from_secs(3600))),
            ],
            max_points_per_series: 2_000,
        }
    }
}

/// Bucket widths the guard may widen to, smallest first.
const LADDER_SECS: [u64; 16] = [
    1,
    5,
    10,
    15,
    30,
    60,
    300,
    600,
    900,
    1800,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86_400,
    7 * 86_400,
];

impl AggregationRules {
    /// Problems with the rule list, for the config validator.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = vec![];
        if self.rules.is_empty() {
            problems.push("aggregation.rules must not be empty".to_string());
        }
        let mut previous: Option<Duration> = None;
        for (i, rule) in self.rules.iter().enumerate() {
            let last = i + 1 == self.rules.len();
            match (rule.up_to, last) {
                (None, false) => problems.push(format!(
                    "aggregation.rules[{i}]: only the last rule may omit `up_to`"
                )),
                (Some(_), true) => problems.push(format!(
                    "aggregation.rules[{i}]: the last rule must omit `up_to` so every range has a bucket"
                )),
                _ => {}
            }
            if let Some(HumanDuration(d)) = rule.up_to {
                if previous.is_some_and(|p| d <= p) {
                    problems.push(format!(
                        "aggregation.rules[{i}]: `up_to` must be longer than the rule before it"
                    ));
                }
                previous = Some(d);
            }
        }
        if self.max_points_per_series == 0 {
            problems.push("aggregation.max_points_per_series must be > 0".to_string());
        }
        problems
    }

    /// The rule's bucket for a range of `span`, before the points guard.
    pub fn rule_bucket(&self, span: Duration) -> Bucket {
        self.rules
            .iter()
            .find(|r| r.up_to.is_none_or(|HumanDuration(up_to)| span <= up_to))
            .map(|r| r.bucket)
            .unwrap_or(Bucket::Raw)
    }

    /// The bucket a panel uses for `span`: the rule's, widened so that an aggregated series has
    /// at most `max_points_per_series` points. Raw stays raw (the row limit guards it).
    pub fn bucket_for(&self, span: Duration) -> Bucket {
        match self.rule_bucket(span) {
            Bucket::Raw => Bucket::Raw,
            Bucket::Every(every) => {
                let max = self.max_points_per_series.max(1) as u128;
                if span.as_nanos().div_ceil(every.as_nanos().max(1)) <= max {
                    return Bucket::Every(every);
                }
                let needed = span.as_nanos().div_ceil(max);
                let widened = LADDER_SECS
                    .iter()
                    .map(|s| Duration::from_secs(*s))
                    .find(|d| d.as_nanos() >= needed && *d > every)
                    .unwrap_or_else(|| Duration::from_nanos(needed.min(u64::MAX as u128) as u64));
                Bucket::Every(widened)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;
    fn span(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }
    fn every(secs: u64) -> Bucket {
        Bucket::Every(Duration::from_secs(secs))
    }

    #[test]
    fn seed_defaults_at_each_boundary() {
        let r = AggregationRules::default();
        assert!(r.problems().is_empty());
        let just_past = |s: u64| Duration::from_secs(s) + Duration::from_nanos(1);
        assert_eq!(r.bucket_for(span(8 * H)), Bucket::Raw);
        assert_eq!(r.bucket_for(just_past(8 * H)), every(60));
        assert_eq!(r.bucket_for(span(24 * H)), every(60));
        assert_eq!(r.bucket_for(just_past(24 * H)), every(600));
        assert_eq!(r.bucket_for(span(96 * H)), every(600));
        assert_eq!(r.bucket_for(just_past(96 * H)), every(3600));
        assert_eq!(r.bucket_for(span(7 * 24 * H)), every(3600));
    }

    #[test]
    fn points_guard_widens_long_ranges() {
        let r = AggregationRules::default();
        // 365 days at 1 h would be 8,760 points; 6 h buckets give 1,460.
        assert_eq!(r.bucket_for(span(365 * 24 * H)), every(6 * H));
        let tight = AggregationRules {
            max_points_per_series: 100,
            ..Default::default()
        };
        // 1 day at 1 min is 1,440 points; 15 min buckets give 96.
        assert_eq!(tight.bucket_for(span(24 * H)), every(900));
    }

    #[test]
    fn overrides_parse_and_are_checked() {
        let yaml = "rules:\n  - {up_to: 1h, bucket: raw}\n  - {up_to: 2d, bucket: 5m}\n  - {bucket: 1d}\nmax_points_per_series: 500\n";
        let r: AggregationRules = serde_yaml::from_str(yaml).unwrap();
        assert!(r.problems().is_empty(), "{:?}", r.problems());
        assert_eq!(r.bucket_for(span(H)), Bucket::Raw);
        assert_eq!(r.bucket_for(span(2 * H)), every(300));
        assert_eq!(r.bucket_for(span(30 * 24 * H)), every(86_400));

        let bad = "rules:\n  - {up_to: 2d, bucket: 5m}\n  - {up_to: 1d, bucket: 1m}\n";
        let r: AggregationRules = serde_yaml::from_str(bad).unwrap();
        let problems = r.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("rules[1]: `up_to` must be longer than the rule before"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("rules[1]: the last rule must omit"))
        );
        assert!(serde_yaml::from_str::<AggregationRules>("rules:\n  - {bucket: 0s}\n").is_err());
        assert!(serde_yaml::from_str::<AggregationRules>("rules:\n  - {bukket: 1m}\n").is_err());
    }
}
