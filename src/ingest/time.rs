//! The `time` column: RFC 3339 strings or integer epochs in a request-wide precision.

use chrono::DateTime;

use super::IngestError;

/// Unit of integer epoch timestamps (`precision=` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    Seconds,
    #[default]
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

impl std::str::FromStr for Precision {
    type Err = IngestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "s" => Ok(Precision::Seconds),
            "ms" => Ok(Precision::Milliseconds),
            "us" => Ok(Precision::Microseconds),
            "ns" => Ok(Precision::Nanoseconds),
            other => Err(IngestError::InvalidPrecision(other.to_string())),
        }
    }
}

impl Precision {
    fn nanos(self) -> i64 {
        match self {
            Precision::Seconds => 1_000_000_000,
            Precision::Milliseconds => 1_000_000,
            Precision::Microseconds => 1_000,
            Precision::Nanoseconds => 1,
        }
    }

    /// Epoch integer → nanoseconds, refusing values that overflow the nanosecond range
    /// (years 1677..2262).
    pub fn epoch_to_nanos(self, value: i64) -> Result<i64, String> {
        value.checked_mul(self.nanos()).ok_or_else(|| {
            format!("epoch {value} in precision {self:?} is outside the representable range")
        })
    }
}

/// RFC 3339 text → nanoseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let t = DateTime::parse_from_rfc3339(text.trim())
        .map_err(|e| format!("unparseable time {text:?}: {e} (expected RFC 3339 such as 2024-05-01T12:00:00Z, or an integer epoch)"))?;
    t.timestamp_nanos_opt()
        .ok_or_else(|| format!("time {text:?} is outside the representable range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precisions_scale_epochs() {
        assert_eq!(Precision::Seconds.epoch_to_nanos(2).unwrap(), 2_000_000_000);
        assert_eq!(Precision::default().epoch_to_nanos(2).unwrap(), 2_000_000);
        assert!(Precision::Seconds.epoch_to_nanos(i64::MAX / 10).is_err());
        assert!("h".parse::<Precision>().is_err());
    }

    #[test]
    fn rfc3339_with_offsets() {
        assert_eq!(
            parse_rfc3339("1970-01-01T00:00:01Z").unwrap(),
            1_000_000_000
        );
        assert_eq!(
            parse_rfc3339("1970-01-01T01:00:01+01:00").unwrap(),
            1_000_000_000
        );
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
