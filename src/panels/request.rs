//! Query parameters of `/panels/{id}/data`, as sent, with typed accessors that name the
//! parameter in their errors. Values stay data: `series` and `filter` are bound into queries,
//! `sort` must name a configured column, `order` is `asc` or `desc`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ParamError, RequestedRange};
use crate::config::SortOrder;

/// Most rows a table page may hold.
pub const MAX_PAGE_SIZE: u32 = 1_000;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct PanelRequest {
    pub from: Option<String>,
    pub to: Option<String>,
    pub series: Option<String>,
    pub sort: Option<String>,
    pub order: Option<String>,
    pub page: Option<String>,
    pub page_size: Option<String>,
    pub disable_aggregation: Option<String>,
    pub filter: Option<String>,
    /// The dashboard whose variables apply (the page sends its own); else the first placing the
    /// panel that declares variables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<String>,
    /// `var-<name>` values (repeated for a multi variable), from the raw query string.
    #[serde(skip_deserializing, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, Vec<String>>,
    /// Pixel columns a raw chart is drawn in: raw ranges with more rows than `raw_limit` are
    /// downsampled (M4) to this many columns. The page sends its chart's width.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_points: Option<String>,
    /// A range already resolved by the server itself (the alert evaluator's window): used
    /// instead of `from`/`to`, never read from a URL, part of the cache key.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub between: Option<RequestedRange>,
}

impl PanelRequest {
    /// The request in a raw query string: the named parameters, and every `var-<name>`
    /// (repeatable) into `vars`.
    pub fn from_query(raw: &str) -> Result<Self, ParamError> {
        let invalid = |e: serde_urlencoded::de::Error| ParamError {
            param: "query",
            message: e.to_string(),
        };
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).map_err(invalid)?;
        let named: Vec<&(String, String)> = pairs
            .iter()
            .filter(|(k, _)| !k.starts_with("var-"))
            .collect();
        let mut request: Self =
            serde_urlencoded::from_str(&serde_urlencoded::to_string(named).map_err(|e| {
                ParamError {
                    param: "query",
                    message: e.to_string(),
                }
            })?)
            .map_err(invalid)?;
        for (key, value) in &pairs {
            if let Some(name) = key.strip_prefix("var-") {
                request
                    .vars
                    .entry(name.to_string())
                    .or_default()
                    .push(value.clone());
            }
        }
        Ok(request)
    }

    /// The parameters as one canonical string: the cache key. Relative ranges (`now-6h`) stay
    /// relative, so repeated requests within the refresh interval share an entry.
    pub fn cache_key(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn range(&self, now_ns: i64) -> Result<RequestedRange, ParamError> {
        if let Some(range) = self.between {
            return Ok(range);
        }
        RequestedRange::parse(self.from.as_deref(), self.to.as_deref(), now_ns)
    }

    pub fn disable_aggregation(&self) -> Result<bool, ParamError> {
        match self.disable_aggregation.as_deref().map(str::trim) {
            None | Some("") | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(ParamError {
                param: "disable_aggregation",
                message: format!("expected true or false, got {other:?}"),
            }),
        }
    }

    pub fn order(&self) -> Result<Option<SortOrder>, ParamError> {
        match self.order.as_deref().map(|o| o.trim().to_ascii_lowercase()) {
            None => Ok(None),
            Some(o) if o == "asc" => Ok(Some(SortOrder::Asc)),
            Some(o) if o == "desc" => Ok(Some(SortOrder::Desc)),
            Some(_) => Err(ParamError {
                param: "order",
                message: "expected asc or desc".into(),
            }),
        }
    }

    pub fn page(&self) -> Result<u32, ParamError> {
        positive(self.page.as_deref(), "page", 1, u32::MAX)
    }

    pub fn page_size(&self, default: u32) -> Result<u32, ParamError> {
        positive(
            self.page_size.as_deref(),
            "page_size",
            default,
            MAX_PAGE_SIZE,
        )
    }

    /// Columns for M4 downsampling: `max_points`, 1,000 when absent.
    pub fn max_points(&self) -> Result<usize, ParamError> {
        positive(self.max_points.as_deref(), "max_points", 1_000, 20_000).map(|n| n as usize)
    }

    /// A non-empty `series` filter.
    pub fn series(&self) -> Option<&str> {
        self.series.as_deref().filter(|s| !s.is_empty())
    }

    /// A non-empty text filter.
    pub fn filter(&self) -> Option<&str> {
        self.filter.as_deref().filter(|s| !s.trim().is_empty())
    }
}

fn positive(
    text: Option<&str>,
    param: &'static str,
    default: u32,
    max: u32,
) -> Result<u32, ParamError> {
    let Some(text) = text else {
        return Ok(default);
    };
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ParamError {
            param,
            message: format!("expected a whole number from 1 to {max}, got {text:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_sql_in_typed_parameters() {
        let request = PanelRequest {
            order: Some("desc; DROP TABLE cpu".into()),
            page: Some("1 OR 1=1".into()),
            disable_aggregation: Some("yes".into()),
            ..PanelRequest::default()
        };
        assert_eq!(request.order().unwrap_err().param, "order");
        assert_eq!(request.page().unwrap_err().param, "page");
        assert_eq!(
            request.disable_aggregation().unwrap_err().param,
            "disable_aggregation"
        );
        let big = PanelRequest {
            page_size: Some("1001".into()),
            ..PanelRequest::default()
        };
        assert!(big.page_size(25).is_err());
        assert_eq!(PanelRequest::default().page_size(25), Ok(25));
    }

    #[test]
    fn max_points_is_a_bounded_whole_number_named_in_its_error() {
        assert_eq!(PanelRequest::default().max_points(), Ok(1_000));
        for bad in ["0", "20001", "1e3", "640px"] {
            let request = PanelRequest {
                max_points: Some(bad.into()),
                ..PanelRequest::default()
            };
            assert_eq!(
                request.max_points().unwrap_err().param,
                "max_points",
                "{bad}"
            );
        }
        let request = PanelRequest {
            max_points: Some(" 640 ".into()),
            ..PanelRequest::default()
        };
        assert_eq!(request.max_points(), Ok(640));
    }

    #[test]
    fn a_resolved_range_is_used_and_keyed_but_never_read_from_a_url() {
        let range = RequestedRange {
            from_ns: 1,
            to_ns: 2,
        };
        let request = PanelRequest {
            between: Some(range),
            ..PanelRequest::default()
        };
        assert_eq!(request.range(99), Ok(range));
        assert_ne!(request.cache_key(), PanelRequest::default().cache_key());
        let from_url: PanelRequest =
            serde_json::from_str(r#"{"between": {"from_ns": 1, "to_ns": 2}}"#).unwrap();
        assert_eq!(from_url.between, None);
    }
}
