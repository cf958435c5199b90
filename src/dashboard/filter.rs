//! The runs filter of a query string (`status`, `queue`, `name`, `q`, `from`, `to`, `before`,
//! `limit`), parsed strictly: a malformed value is a `400` naming it.

use std::time::SystemTime;

use serde::Deserialize;

use super::failure::Failure;
use crate::store::{RunFilter, RunId, RunStatus};

/// The most runs a page lists.
pub(crate) const MAX_LIMIT: u32 = 500;
/// Runs a page lists unless `limit` says otherwise.
pub(crate) const DEFAULT_LIMIT: u32 = 50;
/// How many runs (by id) one input search reads before it offers to search older ones.
pub(crate) const SEARCH_WINDOW: i64 = 50_000;

/// The query string of the runs page and `api/runs`, as given.
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct RunsQuery {
    #[serde(default)]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) queue: String,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) q: String,
    #[serde(default)]
    pub(crate) from: String,
    #[serde(default)]
    pub(crate) to: String,
    #[serde(default)]
    pub(crate) parent: String,
    #[serde(default)]
    pub(crate) before: String,
    #[serde(default)]
    pub(crate) limit: String,
}

/// A parsed query: the filter, and the page size.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub(crate) filter: RunFilter,
    pub(crate) before: Option<RunId>,
    pub(crate) limit: u32,
    pub(crate) search: bool,
}

pub(crate) fn parse_status(text: &str) -> Result<RunStatus, Failure> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|_| {
        Failure::BadRequest(format!(
            "unknown status `{text}`: use pending, delayed, running, waiting, completed, failed or cancelled"
        ))
    })
}

/// A time as `2026-12-03T14:00:00Z`, or a civil time `2026-12-03T14:00` / `2026-12-03` (UTC).
fn parse_time(field: &str, text: &str) -> Result<SystemTime, Failure> {
    let bad = || {
        Failure::BadRequest(format!(
            "`{field}` is not a time: `{text}`; use 2026-12-03T14:00:00Z, 2026-12-03T14:00 (UTC) or 2026-12-03"
        ))
    };
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(SystemTime::from(ts));
    }
    let civil = text
        .parse::<jiff::civil::DateTime>()
        .or_else(|_| {
            text.parse::<jiff::civil::Date>()
                .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
        })
        .map_err(|_| bad())?;
    let ts = civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|_| bad())?
        .timestamp();
    Ok(SystemTime::from(ts))
}

impl RunsQuery {
    /// The filter this query asks for; `400` for a malformed value.
    pub(crate) fn parse(&self) -> Result<Parsed, Failure> {
        let mut filter = RunFilter::new();
        fn some(s: &str) -> Option<&str> {
            Some(s.trim()).filter(|s| !s.is_empty())
        }
        if let Some(status) = some(&self.status) {
            filter = filter.status(parse_status(status)?);
        }
        if let Some(queue) = some(&self.queue) {
            filter = filter.queue(queue);
        }
        if let Some(name) = some(&self.name) {
            filter = filter.name(name);
        }
        if let Some(parent) = some(&self.parent) {
            let id = parent
                .parse::<RunId>()
                .map_err(|e| Failure::BadRequest(format!("`parent`: {e}")))?;
            filter = filter.parent(id);
        }
        let search = some(&self.q).is_some();
        if let Some(q) = some(&self.q) {
            filter = filter.input_contains(q);
        }
        if let Some(from) = some(&self.from) {
            filter = filter.created_after(parse_time("from", from)?);
        }
        if let Some(to) = some(&self.to) {
            filter = filter.created_before(parse_time("to", to)?);
        }
        let before = match some(&self.before) {
            Some(b) => Some(
                b.parse::<RunId>()
                    .map_err(|e| Failure::BadRequest(format!("`before`: {e}")))?,
            ),
            None => None,
        };
        let limit = match some(&self.limit) {
            Some(l) => match l.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(Failure::BadRequest(format!(
                        "`limit` must be a whole number from 1 to {MAX_LIMIT}, not `{l}`"
                    )))
                }
            },
            None => DEFAULT_LIMIT,
        };
        if let Some(b) = before {
            filter = filter.before(b);
        }
        Ok(Parsed {
            filter: filter.limit(limit),
            before,
            limit,
            search,
        })
    }

    /// This query's string with `before` set to `cursor` (for the next page's link).
    pub(crate) fn with_before(&self, cursor: Option<RunId>) -> String {
        let mut pairs: Vec<(&str, String)> = [
            ("status", &self.status),
            ("queue", &self.queue),
            ("name", &self.name),
            ("q", &self.q),
            ("from", &self.from),
            ("to", &self.to),
            ("parent", &self.parent),
            ("limit", &self.limit),
        ]
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k, v.trim().to_owned()))
        .collect();
        if let Some(c) = cursor {
            pairs.push(("before", c.to_string()));
        }
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-encodes a query value.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
