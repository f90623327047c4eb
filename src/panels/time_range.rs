//! `from`/`to` as users write them: RFC 3339, integer epoch milliseconds (what Grafana puts in
//! URLs), `now`, or `now` plus/minus a duration (`now-6h`, `now-7d`, `now+15m`). The clock is
//! an argument so tests and caches can pin "now".

use std::time::Duration;

use chrono::DateTime;

use super::ParamError;

/// Default span when `from` is absent.
const DEFAULT_SPAN: Duration = Duration::from_secs(24 * 3600);

/// A resolved, half-open time range `[from, to)` in nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RequestedRange {
    pub from_ns: i64,
    pub to_ns: i64,
}

impl RequestedRange {
    /// Resolves optional `from`/`to` parameters against `now_ns`; `to` defaults to now and
    /// `from` to 24 h before `to`.
    pub fn parse(from: Option<&str>, to: Option<&str>, now_ns: i64) -> Result<Self, ParamError> {
        let to_ns = match to {
            Some(t) => parse_instant(t, now_ns).map_err(|message| ParamError {
                param: "to",
                message,
            })?,
            None => now_ns,
        };
        let from_ns = match from {
            Some(f) => parse_instant(f, now_ns).map_err(|message| ParamError {
                param: "from",
                message,
            })?,
            None => to_ns.saturating_sub(DEFAULT_SPAN.as_nanos() as i64),
        };
        if from_ns >= to_ns {
            return Err(ParamError {
                param: "from",
                message: "must be before `to`".into(),
            });
        }
        Ok(Self { from_ns, to_ns })
    }

    pub fn span(&self) -> Duration {
        Duration::from_nanos((self.to_ns - self.from_ns) as u64)
    }

    /// The range of equal length just before this one (KPI deltas compare against it).
    pub fn previous(&self) -> Self {
        let len = self.to_ns - self.from_ns;
        Self {
            from_ns: self.from_ns - len,
            to_ns: self.from_ns,
        }
    }
}

/// One instant: RFC 3339, epoch milliseconds, `now`, or `now±duration`.
pub fn parse_instant(text: &str, now_ns: i64) -> Result<i64, String> {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("now") {
        let rest = rest.trim();
        if rest.is_empty() {
            return Ok(now_ns);
        }
        let (sign, amount) = match rest.split_at(1) {
            ("-", a) => (-1i64, a),
            ("+", a) => (1i64, a),
            _ => {
                return Err(format!(
                    "{text:?}: expected now, now-<duration> or now+<duration>"
                ));
            }
        };
        let d = humantime::parse_duration(amount.trim())
            .map_err(|e| format!("{text:?}: {e} (durations look like 15m, 6h, 7d)"))?;
        let offset =
            i64::try_from(d.as_nanos()).map_err(|_| format!("{text:?}: duration too long"))?;
        return now_ns
            .checked_add(sign * offset)
            .ok_or_else(|| format!("{text:?}: outside the representable range"));
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = t
            .parse()
            .map_err(|_| format!("{text:?}: epoch milliseconds out of range"))?;
        return ms
            .checked_mul(1_000_000)
            .ok_or_else(|| format!("{text:?}: epoch milliseconds out of range"));
    }
    let parsed = DateTime::parse_from_rfc3339(t)
        .map_err(|e| format!("{text:?}: {e} (use RFC 3339, epoch milliseconds, or now-6h)"))?;
    parsed
        .timestamp_nanos_opt()
        .ok_or_else(|| format!("{text:?}: outside the representable range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_714_564_800_000_000_000; // 2024-05-01T12:00:00Z
    const HOUR: i64 = 3_600_000_000_000;

    #[test]
    fn relative_absolute_and_epoch_forms() {
        assert_eq!(parse_instant("now", NOW), Ok(NOW));
        assert_eq!(parse_instant("now-6h", NOW), Ok(NOW - 6 * HOUR));
        assert_eq!(parse_instant("now - 7d", NOW), Ok(NOW - 168 * HOUR));
        assert_eq!(parse_instant("now+15m", NOW), Ok(NOW + HOUR / 4));
        assert_eq!(parse_instant("2024-05-01T11:00:00Z", NOW), Ok(NOW - HOUR));
        assert_eq!(parse_instant("1714564800000", NOW), Ok(NOW));
    }

    #[test]
    fn garbage_and_sql_fragments_are_errors_not_text() {
        for bad in [
            "now*2",
            "now-",
            "now-6 parsecs",
            "yesterday",
            "'; DROP TABLE cpu; --",
            "",
            "99999999999999999999",
        ] {
            assert!(
                parse_instant(bad, NOW).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn ranges_default_and_must_be_ordered() {
        let r = RequestedRange::parse(None, None, NOW).unwrap();
        assert_eq!((r.from_ns, r.to_ns), (NOW - 24 * HOUR, NOW));
        let r = RequestedRange::parse(Some("now-6h"), Some("now-1h"), NOW).unwrap();
        assert_eq!(r.span(), Duration::from_secs(5 * 3600));
        assert_eq!(r.previous().to_ns, r.from_ns);
        assert_eq!(r.previous().span(), r.span());
        let err = RequestedRange::parse(Some("now"), Some("now-1h"), NOW).unwrap_err();
        assert_eq!(err.param, "from");
        let err = RequestedRange::parse(None, Some("soon"), NOW).unwrap_err();
        assert_eq!(err.param, "to");
        assert!(err.to_string().starts_with("invalid `to`: "), "{err}");
    }
}
