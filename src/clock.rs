//! Wall-clock time behind a trait, so session expiry, lockouts and (later) alert evaluation can be
//! tested by moving a manual clock instead of sleeping; and the one type an instant has.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

pub type SharedClock = Arc<dyn Clock>;

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_ms: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(now_ms)))
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// One instant, UTC, as nanoseconds since the Unix epoch: the single form a time keeps from a
/// query's row or the alert clock to a chart's axis. It becomes text or milliseconds only at
/// the JSON and HTML edges (`Serialize` writes RFC 3339; [`epoch_ms`] writes milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_ns(ns: i64) -> Self {
        Self(ns)
    }

    pub const fn from_ms(ms: i64) -> Self {
        Self(ms.saturating_mul(1_000_000))
    }

    pub const fn ns(self) -> i64 {
        self.0
    }

    /// Milliseconds, rounded towards the past (what charts and Grafana URLs use).
    pub const fn ms(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// `2024-01-01T00:00:00Z`, with sub-seconds only when present.
    pub fn rfc3339(self) -> String {
        chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(self.0)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }

    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .map(Self)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }
}

/// `#[serde(with = "epoch_ms")]`: a [`Timestamp`] as integer epoch milliseconds.
pub mod epoch_ms {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.ms())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        i64::deserialize(d).map(Timestamp::from_ms)
    }

    /// The same for an optional time (`null` when absent).
    pub mod option {
        use super::Timestamp;
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_some(&t.ms()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
            Ok(Option::<i64>::deserialize(d)?.map(Timestamp::from_ms))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_edges() {
        let t = Timestamp::from_ns(1_704_067_200_123_456_789);
        assert_eq!(t.ms(), 1_704_067_200_123);
        assert_eq!(t.rfc3339(), "2024-01-01T00:00:00.123456789Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.rfc3339()), Some(t));
        assert_eq!(
            Timestamp::from_ns(-1).ms(),
            -1,
            "before 1970 rounds to the past"
        );
        assert_eq!(Timestamp::from_ms(0).rfc3339(), "1970-01-01T00:00:00Z");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert!(serde_json::from_str::<Timestamp>("\"noon\"").is_err());
    }
}
