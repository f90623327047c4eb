//! Brakes: progressive lockout after failed logins (per account and per client IP, in the
//! database so every server process sees them) and a token bucket per API key (in memory).

use std::collections::HashMap;

use parking_lot::Mutex;
use sqlx::Row;

use super::{Auth, AuthError};

/// What failures are counted against. The second factor has counters of its own, which only a
/// completed MFA clears: a correct password must not wipe the wrong codes sent after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Account,
    Ip,
    MfaAccount,
    MfaIp,
    /// One half-signed-in session: ended after a few wrong codes.
    MfaSession,
}

/// The subject of the password counter: one account as tried from one client, so a stranger
/// who guesses at someone's account locks only themselves out of it (their address has its own
/// counter too, and all sign-ins share `auth.logins_per_second`).
pub fn account_from(email: &str, ip: &str) -> String {
    format!("{email} from {ip}")
}

/// Wrong codes one half-signed-in session may send before it ends (the password is asked again).
pub const CODES_PER_SESSION: u32 = 3;

impl Subject {
    fn as_str(self) -> &'static str {
        match self {
            Subject::Account => "account",
            Subject::Ip => "ip",
            Subject::MfaAccount => "mfa_account",
            Subject::MfaIp => "mfa_ip",
            Subject::MfaSession => "mfa_session",
        }
    }

    /// The key counters are kept under. An IPv6 client is counted by its /64, the smallest
    /// block one subscriber is usually given: otherwise it could take a fresh address for
    /// every attempt.
    fn key(self, subject: &str) -> String {
        if let (Subject::Account, Some((account, client))) = (self, subject.split_once(" from ")) {
            return format!("{account} from {}", Subject::Ip.key(client));
        }
        match (self, subject.parse::<std::net::IpAddr>()) {
            (Subject::Ip | Subject::MfaIp, Ok(std::net::IpAddr::V6(v6)))
                if v6.to_ipv4_mapped().is_none() =>
            {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            _ => subject.to_string(),
        }
    }
}

struct Attempts {
    failures: i64,
    window_start: i64,
    lockouts: i64,
    locked_until: i64,
}

impl Auth {
    async fn attempts(&self, kind: Subject, subject: &str) -> Result<Option<Attempts>, AuthError> {
        let row = sqlx::query(
            "SELECT failures, window_start, lockouts, locked_until FROM login_attempts \
             WHERE kind = $1 AND subject = $2",
        )
        .bind(kind.as_str())
        .bind(kind.key(subject))
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(Attempts {
                failures: r.try_get("failures")?,
                window_start: r.try_get("window_start")?,
                lockouts: r.try_get("lockouts")?,
                locked_until: r.try_get("locked_until")?,
            }),
            None => None,
        })
    }

    /// Milliseconds until `subject` may try again, if it is locked out now.
    pub(super) async fn locked_for(
        &self,
        kind: Subject,
        subject: &str,
    ) -> Result<Option<i64>, AuthError> {
        let now = self.now_ms();
        Ok(self
            .attempts(kind, subject)
            .await?
            .filter(|a| a.locked_until > now)
            .map(|a| a.locked_until - now))
    }

    /// Counts one failure; at the limit the subject is locked out for `lockout × 2^n` (n =
    /// earlier lockouts), capped at `max_lockout`.
    pub(super) async fn record_failure(
        &self,
        kind: Subject,
        subject: &str,
    ) -> Result<(), AuthError> {
        self.count_failure(kind, subject, 1).await
    }

    /// A reserved attempt (already counted, see [`Self::reserve_attempt`]) failed: at the limit,
    /// the subject is locked out.
    pub(super) async fn attempt_failed(
        &self,
        kind: Subject,
        subject: &str,
    ) -> Result<(), AuthError> {
        self.count_failure(kind, subject, 0).await
    }

    async fn count_failure(&self, kind: Subject, subject: &str, add: i64) -> Result<(), AuthError> {
        let now = self.now_ms();
        let limit = self.limit(kind);
        let window = self.config.failure_window.0.as_millis() as i64;
        let mut a = self.attempts(kind, subject).await?.unwrap_or(Attempts {
            failures: 0,
            window_start: now,
            lockouts: 0,
            locked_until: 0,
        });
        if now - a.window_start > window {
            a.failures = 0;
            a.window_start = now;
        }
        a.failures += add;
        if a.failures >= limit {
            let base = self.config.lockout.0.as_millis() as i64;
            let cap = self.config.max_lockout.0.as_millis() as i64;
            let factor = 1i64
                .checked_shl(a.lockouts.clamp(0, 30) as u32)
                .unwrap_or(i64::MAX);
            a.locked_until = now + base.saturating_mul(factor).min(cap);
            a.lockouts += 1;
            a.failures = 0;
            a.window_start = now;
            tracing::warn!(
                kind = kind.as_str(),
                "login locked out after repeated failures"
            );
        }
        sqlx::query(
            "INSERT INTO login_attempts (kind, subject, failures, window_start, lockouts, locked_until) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kind, subject) DO UPDATE SET \
             failures = excluded.failures, window_start = excluded.window_start, \
             lockouts = excluded.lockouts, locked_until = excluded.locked_until",
        )
        .bind(kind.as_str())
        .bind(kind.key(subject))
        .bind(a.failures)
        .bind(a.window_start)
        .bind(a.lockouts)
        .bind(a.locked_until)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Counts an attempt before it is checked, in one atomic statement, so that parallel
    /// attempts cannot all pass the count while the slow password check runs. A subject that is
    /// locked, or that this attempt takes past its limit (which locks it), is refused.
    pub(super) async fn reserve_attempt(
        &self,
        kind: Subject,
        subject: &str,
    ) -> Result<(), AuthError> {
        let now = self.now_ms();
        let window_start_before = now - self.config.failure_window.0.as_millis() as i64;
        let row = sqlx::query(
            "INSERT INTO login_attempts (kind, subject, failures, window_start, lockouts, locked_until) \
             VALUES ($1, $2, 1, $3, 0, 0) ON CONFLICT (kind, subject) DO UPDATE SET \
             failures = CASE WHEN login_attempts.locked_until > $3 THEN login_attempts.failures \
                 WHEN login_attempts.window_start < $4 THEN 1 \
                 ELSE login_attempts.failures + 1 END, \
             window_start = CASE WHEN login_attempts.locked_until <= $3 \
                 AND login_attempts.window_start < $4 THEN $3 ELSE login_attempts.window_start END \
             RETURNING failures, locked_until",
        )
        .bind(kind.as_str())
        .bind(kind.key(subject))
        .bind(now)
        .bind(window_start_before)
        .fetch_one(&self.db.pool)
        .await?;
        let failures: i64 = row.try_get("failures")?;
        let locked_until: i64 = row.try_get("locked_until")?;
        if locked_until > now {
            return Err(AuthError::LockedOut {
                retry_after_secs: ((locked_until - now) as u64).div_ceil(1000),
            });
        }
        if failures > self.limit(kind) {
            self.attempt_failed(kind, subject).await?;
            let ms = self.locked_for(kind, subject).await?.unwrap_or(1000);
            return Err(AuthError::LockedOut {
                retry_after_secs: (ms as u64).div_ceil(1000),
            });
        }
        Ok(())
    }

    /// A reserved attempt that succeeded is not a failure: its count is given back.
    pub(super) async fn release_attempt(
        &self,
        kind: Subject,
        subject: &str,
    ) -> Result<(), AuthError> {
        sqlx::query(
            "UPDATE login_attempts SET failures = failures - 1 \
             WHERE kind = $1 AND subject = $2 AND failures > 0",
        )
        .bind(kind.as_str())
        .bind(kind.key(subject))
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    fn limit(&self, kind: Subject) -> i64 {
        (match kind {
            Subject::Account | Subject::MfaAccount => self.config.max_failures_per_account,
            Subject::Ip | Subject::MfaIp => self.config.max_failures_per_ip,
            Subject::MfaSession => CODES_PER_SESSION,
        }) as i64
    }

    /// A successful login forgets the account's failures and lockout history.
    pub(super) async fn clear_failures(
        &self,
        kind: Subject,
        subject: &str,
    ) -> Result<(), AuthError> {
        sqlx::query("DELETE FROM login_attempts WHERE kind = $1 AND subject = $2")
            .bind(kind.as_str())
            .bind(kind.key(subject))
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Takes one sign-in from the process-wide bucket, or says how long to wait.
    pub(super) fn take_login_token(&self) -> Result<(), AuthError> {
        self.logins
            .take("all", self.now_ms())
            .map_err(|r| AuthError::RateLimited {
                retry_after_secs: r.retry_after_secs,
            })
    }

    /// Takes one request from the key's bucket, or says how long to wait.
    pub fn take_key_token(&self, key_id: &str) -> Result<(), RateLimited> {
        self.limiter.take(key_id, self.now_ms())
    }
}

/// A request over the key's rate; retry after this many seconds.
#[derive(Debug, Clone, Copy)]
pub struct RateLimited {
    pub retry_after_secs: u64,
}

pub(super) struct KeyLimiter {
    per_ms: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, i64)>>,
}

impl KeyLimiter {
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self {
            per_ms: per_second / 1000.0,
            burst: burst as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn take(&self, key: &str, now_ms: i64) -> Result<(), RateLimited> {
        let mut buckets = self.buckets.lock();
        let (tokens, at) = buckets
            .entry(key.to_string())
            .or_insert((self.burst, now_ms));
        *tokens = (*tokens + (now_ms - *at).max(0) as f64 * self.per_ms).min(self.burst);
        *at = now_ms;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = (1.0 - *tokens) / self.per_ms;
            Err(RateLimited {
                retry_after_secs: (wait_ms / 1000.0).ceil().max(1.0) as u64,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(
            Subject::Ip.key("2001:db8:1:2:aaaa::1"),
            Subject::Ip.key("2001:db8:1:2:bbbb::9")
        );
        assert_eq!(Subject::Ip.key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(
            Subject::Ip.key("2001:db8:1:3::1"),
            Subject::Ip.key("2001:db8:1:2::1")
        );
        assert_eq!(Subject::Ip.key("192.0.2.7"), "192.0.2.7");
        assert_eq!(Subject::Ip.key("::ffff:192.0.2.7"), "::ffff:192.0.2.7");
        assert_eq!(Subject::Account.key("2001:db8::1"), "2001:db8::1");
    }

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let l = KeyLimiter::new(2.0, 3);
        for _ in 0..3 {
            assert!(l.take("k", 0).is_ok());
        }
        let e = l.take("k", 0).unwrap_err();
        assert_eq!(e.retry_after_secs, 1);
        assert!(l.take("other", 0).is_ok(), "buckets are per key");
        assert!(
            l.take("k", 500).is_ok(),
            "half a second refills one token at 2/s"
        );
        assert!(l.take("k", 500).is_err());
    }
}
