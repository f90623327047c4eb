//! Event rules, pure: which of a query's rows are new events, and which of those people hear
//! about. A row is new once: its key (a hash of all its values) is remembered for the rule's
//! lookback, so a late row inside it is still noticed and a row written twice (a retried
//! write) is one event. A rule's first evaluation starts its book: rows from before it are
//! history, not news. Throttling is per label set on the evaluation clock; the daily cap per
//! rule and UTC day. Everything that decides is in [`EventBook`], stored whole after each
//! evaluation, so a restart neither repeats nor forgets.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::state::{Labels, labels_key};
use crate::config::EventWatch;

const DAY_MS: i64 = 86_400_000;

/// One row of an event rule's answer.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub key: String,
    pub time_ms: i64,
    pub labels: Labels,
    pub attachment: Option<String>,
    pub row: serde_json::Map<String, Value>,
}

impl EventRow {
    /// The row as the query gave it; `time` (epoch ms) is read from the `time` column.
    pub fn new(
        row: serde_json::Map<String, Value>,
        label_columns: &[String],
        attachment: Option<&str>,
    ) -> Option<Self> {
        let time_ms = match row.get("time")? {
            Value::String(t) => chrono::DateTime::parse_from_rfc3339(t)
                .ok()?
                .timestamp_millis(),
            Value::Number(n) => n.as_i64()?,
            _ => return None,
        };
        let text = |v: &Value| match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        let labels = label_columns
            .iter()
            .filter_map(|c| row.get(c).and_then(text).map(|t| (c.clone(), t)))
            .collect();
        let attachment = attachment.and_then(|c| row.get(c)).and_then(text);
        // serde_json keeps keys sorted, so equal rows hash equal.
        let digest = Sha256::digest(Value::Object(row.clone()).to_string().as_bytes());
        let key = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Some(Self {
            key,
            time_ms,
            labels,
            attachment,
            row,
        })
    }
}

/// What became of one new row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// People are told; `suppressed` rows of its label set were held back since the last
    /// notice; `cap_reached`: this is the day's last.
    Send {
        suppressed: u64,
        cap_reached: bool,
    },
    Throttled,
    Capped,
}

impl Verdict {
    /// As written to the tenant's `alerts` table.
    pub fn state(self) -> &'static str {
        match self {
            Verdict::Send { .. } => "event",
            Verdict::Throttled => "throttled",
            Verdict::Capped => "capped",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Sent {
    at: i64,
    /// Rows held back since.
    suppressed: u64,
}

/// An event rule's memory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventBook {
    /// The rule's first evaluation: rows up to it are history.
    pub since: i64,
    /// Row key → row time, for rows inside the lookback.
    seen: HashMap<String, i64>,
    /// Label set → its last notice.
    sent: BTreeMap<String, Sent>,
    /// The UTC day (epoch days) `sent_today` counts.
    day: i64,
    sent_today: u32,
}

impl EventBook {
    pub fn new(now: i64) -> Self {
        Self {
            since: now,
            seen: HashMap::new(),
            sent: BTreeMap::new(),
            day: now.div_euclid(DAY_MS),
            sent_today: 0,
        }
    }

    /// The earliest row time the next query needs: the lookback, not before the book began.
    pub fn from_ms(&self, watch: &EventWatch, now: i64) -> i64 {
        (now - watch.lookback.as_millis() as i64).max(self.since)
    }

    /// Judges the rows not seen before, oldest first; `silenced` rows are seen but neither
    /// sent nor counted against the throttle or cap.
    pub fn judge(
        &mut self,
        rows: Vec<EventRow>,
        watch: &EventWatch,
        silenced: impl Fn(&Labels) -> bool,
        now: i64,
    ) -> Vec<(EventRow, Option<Verdict>)> {
        if now.div_euclid(DAY_MS) != self.day {
            self.day = now.div_euclid(DAY_MS);
            self.sent_today = 0;
        }
        let mut fresh: Vec<EventRow> = rows
            .into_iter()
            .filter(|r| r.time_ms > self.since && !self.seen.contains_key(&r.key))
            .collect();
        fresh.sort_by(|a, b| (a.time_ms, &a.key).cmp(&(b.time_ms, &b.key)));
        fresh.dedup_by(|a, b| a.key == b.key);
        let throttle = watch.throttle.as_millis() as i64;
        let mut out = Vec::with_capacity(fresh.len());
        for row in fresh {
            self.seen.insert(row.key.clone(), row.time_ms);
            if silenced(&row.labels) {
                out.push((row, None));
                continue;
            }
            let series = labels_key(&row.labels);
            let last = self.sent.entry(series).or_default();
            let verdict = if watch.daily_cap.is_some_and(|cap| self.sent_today >= cap) {
                Verdict::Capped
            } else if throttle > 0 && last.at > 0 && now - last.at < throttle {
                last.suppressed += 1;
                Verdict::Throttled
            } else {
                self.sent_today += 1;
                let verdict = Verdict::Send {
                    suppressed: last.suppressed,
                    cap_reached: watch.daily_cap == Some(self.sent_today),
                };
                *last = Sent {
                    at: now,
                    suppressed: 0,
                };
                verdict
            };
            out.push((row, Some(verdict)));
        }
        self.forget(watch, now);
        out
    }

    /// Drops what can no longer matter: rows older than the lookback (the query no longer
    /// returns them) and label sets whose throttle is over with nothing held back.
    fn forget(&mut self, watch: &EventWatch, now: i64) {
        let oldest = self.from_ms(watch, now);
        self.seen.retain(|_, time| *time > oldest);
        let throttle = watch.throttle.as_millis() as i64;
        self.sent
            .retain(|_, s| now - s.at < throttle || (s.suppressed > 0 && now - s.at < DAY_MS));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn watch(throttle_s: u64, cap: Option<u32>) -> EventWatch {
        EventWatch {
            table: "events".into(),
            sql: String::new(),
            labels: vec!["camera".into()],
            attachment: Some("snapshot".into()),
            panel: None,
            lookback: Duration::from_secs(600),
            throttle: Duration::from_secs(throttle_s),
            daily_cap: cap,
        }
    }

    fn row(time_ms: i64, camera: &str, score: f64) -> EventRow {
        let row = json!({"time": time_ms, "camera": camera, "score": score, "snapshot": "ab"});
        let Value::Object(row) = row else {
            unreachable!()
        };
        EventRow::new(row, &["camera".into()], Some("snapshot")).unwrap()
    }

    fn verdicts(out: &[(EventRow, Option<Verdict>)]) -> Vec<Option<Verdict>> {
        out.iter().map(|(_, v)| *v).collect()
    }

    const SEND: Option<Verdict> = Some(Verdict::Send {
        suppressed: 0,
        cap_reached: false,
    });

    #[test]
    fn each_new_row_once_and_history_is_not_news() {
        let w = watch(0, None);
        let mut book = EventBook::new(1_000);
        let out = book.judge(
            vec![row(900, "a", 1.0), row(1_500, "a", 1.0)],
            &w,
            |_| false,
            2_000,
        );
        assert_eq!(
            verdicts(&out),
            [SEND],
            "the row before the book began is history"
        );
        assert_eq!(out[0].0.attachment.as_deref(), Some("ab"));
        // The same rows again, a retried write of one of them and a late one: only the late one.
        let again = vec![
            row(1_500, "a", 1.0),
            row(1_500, "a", 1.0),
            row(1_200, "b", 2.0),
        ];
        let out = book.judge(again, &w, |_| false, 3_000);
        assert_eq!(verdicts(&out), [SEND]);
        assert_eq!(out[0].0.labels["camera"], "b");
    }

    #[test]
    fn throttle_per_label_set_counts_what_it_held_back() {
        let w = watch(300, None);
        let mut book = EventBook::new(0);
        let rows = vec![row(10, "a", 1.0), row(20, "a", 2.0), row(30, "b", 1.0)];
        let out = book.judge(rows, &w, |_| false, 1_000);
        assert_eq!(verdicts(&out), [SEND, Some(Verdict::Throttled), SEND]);
        let out = book.judge(vec![row(40, "a", 3.0)], &w, |_| false, 200_000);
        assert_eq!(verdicts(&out), [Some(Verdict::Throttled)]);
        let out = book.judge(vec![row(50, "a", 4.0)], &w, |_| false, 302_000);
        let told = Some(Verdict::Send {
            suppressed: 2,
            cap_reached: false,
        });
        assert_eq!(verdicts(&out), [told]);
    }

    #[test]
    fn the_daily_cap_ends_the_day_and_a_new_day_starts_again() {
        let w = watch(0, Some(2));
        let mut book = EventBook::new(0);
        let rows = (1..=4).map(|i| row(i, "a", i as f64)).collect();
        let out = book.judge(rows, &w, |_| false, 1_000);
        let last = Some(Verdict::Send {
            suppressed: 0,
            cap_reached: true,
        });
        let capped = Some(Verdict::Capped);
        assert_eq!(verdicts(&out), [SEND, last, capped, capped]);
        let next_day = DAY_MS + 1_000;
        let out = book.judge(vec![row(DAY_MS, "a", 9.0)], &w, |_| false, next_day);
        assert_eq!(verdicts(&out), [SEND]);
    }

    #[test]
    fn silenced_rows_are_seen_but_neither_sent_nor_counted() {
        let w = watch(300, Some(1));
        let mut book = EventBook::new(0);
        let out = book.judge(vec![row(10, "a", 1.0)], &w, |l| l["camera"] == "a", 1_000);
        assert_eq!(verdicts(&out), [None]);
        let out = book.judge(
            vec![row(10, "a", 1.0), row(20, "b", 1.0)],
            &w,
            |_| false,
            2_000,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].1,
            Some(Verdict::Send {
                suppressed: 0,
                cap_reached: true
            })
        );
    }

    #[test]
    fn memory_is_kept_to_the_lookback_and_survives_a_round_trip() {
        let w = watch(60, None);
        let mut book = EventBook::new(0);
        book.judge(
            vec![row(10, "a", 1.0), row(500_000, "b", 1.0)],
            &w,
            |_| false,
            600_000,
        );
        let stored = serde_json::to_string(&book).unwrap();
        let mut back: EventBook = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, book);
        // 10 min on, the first row is outside the lookback and forgotten; the second is not.
        let out = back.judge(vec![row(500_000, "b", 1.0)], &w, |_| false, 1_000_000);
        assert!(out.is_empty());
        assert_eq!(back.seen.len(), 1);
        assert!(back.sent.is_empty(), "throttles that ran out are dropped");
    }
}
