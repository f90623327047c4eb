//! What every panel answer shares — which panel, its title and the range it covers — and the
//! cached form of an answer: the typed value pages, alerts and exports read, with its JSON made
//! once, on the first API request that needs it.

use std::sync::OnceLock;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::kinds::PanelAnswer;
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

/// One answer as the cache keeps it.
#[derive(Debug)]
pub struct PanelData {
    pub answer: PanelAnswer,
    json: OnceLock<Bytes>,
}

impl PanelData {
    pub fn new(answer: PanelAnswer) -> Self {
        Self {
            answer,
            json: OnceLock::new(),
        }
    }

    /// The answer as the API sends it; serialised once, then shared by every cache hit.
    pub fn json(&self) -> Bytes {
        self.json
            .get_or_init(|| {
                // Every answer type serialises (no maps with non-string keys, no failing
                // serialisers), so the error arm only guards against a future mistake.
                serde_json::to_vec(&self.answer)
                    .map(Bytes::from)
                    .unwrap_or_else(|e| Bytes::from(format!("{{\"error\":\"{e}\"}}")))
            })
            .clone()
    }

    /// Bytes the entry holds, for the cache's weigher: the JSON length, counted without
    /// keeping it, twice (the typed value and the JSON made later are of that order).
    pub fn weight(&self) -> usize {
        let mut counter = ByteCounter(0);
        let _ = serde_json::to_writer(&mut counter, &self.answer);
        let image = match &self.answer {
            PanelAnswer::CustomImage(image) => image.bytes.len(),
            _ => 0,
        };
        counter.0 * 2 + image
    }
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
