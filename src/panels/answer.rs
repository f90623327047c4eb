//! What every panel answer shares: which panel, its title and the range it covers.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// The fields every panel answer starts with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub panel: String,
    pub title: String,
    pub description: Option<String>,
    pub range: Range,
}

/// The half-open range `[from, to)` the answer covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub from: Timestamp,
    pub to: Timestamp,
}
