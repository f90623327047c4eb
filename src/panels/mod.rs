//! The panel engine's building blocks. Panels turn a request's time range into a query and
//! the result into a panel-type-specific answer; this module starts with the two pieces every
//! panel type shares: the requested range (`from`/`to`, absolute or relative to now) and the
//! aggregation rules that pick a time bucket for it (seed 003: ≤ 8 h raw, ≤ 1 d 1 min,
//! ≤ 4 d 10 min, longer 1 h).

mod time_range;

pub use crate::config::{AggregationRule, AggregationRules, Bucket};
pub use time_range::{RequestedRange, parse_instant};

/// A request parameter the panel engine cannot use; always names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{param}`: {message}")]
pub struct ParamError {
    pub param: &'static str,
    pub message: String,
}
