//! [`RunFilter`]: which runs a listing returns.

use std::time::SystemTime;

use super::{RunId, RunStatus};

/// Which runs [`TaskRunner::list_runs`](crate::TaskRunner::list_runs) returns: newest first,
/// at most `limit` (default 100).
///
/// Pages go by keyset: pass the last id of a page to [`before`](Self::before) for the next
/// one (no offset, so a page costs the same however deep it is).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use taskrunner::{RunFilter, RunId, RunStatus};
///
/// let failed_research = RunFilter::new().status(RunStatus::Failed).name("research").limit(20);
/// let last_seen: RunId = "1042".parse().unwrap();
/// let next_page = failed_research
///     .before(last_seen)
///     .input_contains("tokio")
///     .created_after(SystemTime::now() - Duration::from_secs(3600));
/// # drop(next_page);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFilter {
    pub(crate) status: Option<RunStatus>,
    pub(crate) name: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) before: Option<RunId>,
    pub(crate) after: Option<RunId>,
    pub(crate) input_contains: Option<String>,
    pub(crate) created_after: Option<SystemTime>,
    pub(crate) created_before: Option<SystemTime>,
    pub(crate) parent: Option<RunId>,
    pub(crate) limit: u32,
}

impl Default for RunFilter {
    fn default() -> Self {
        RunFilter {
            status: None,
            name: None,
            queue: None,
            before: None,
            after: None,
            input_contains: None,
            created_after: None,
            created_before: None,
            parent: None,
            limit: 100,
        }
    }
}

impl RunFilter {
    /// Every run, newest first, at most 100.
    pub fn new() -> Self {
        RunFilter::default()
    }

    /// Only runs with this status.
    pub fn status(mut self, status: RunStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only runs of this definition.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Only runs in this queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Only runs older than `cursor` (ids below it): the next page after a page whose last
    /// run is `cursor`.
    pub fn before(mut self, cursor: RunId) -> Self {
        self.before = Some(cursor);
        self
    }

    /// Only runs newer than `cursor` (ids above it): bounds a search to a window of ids.
    pub fn after(mut self, cursor: RunId) -> Self {
        self.after = Some(cursor);
        self
    }

    /// Only runs whose input JSON contains `text` (case-sensitive, as stored: a string value
    /// is matched inside its quotes, so `"tokio"` finds `{"topic":"tokio"}`). Combine it with
    /// a time bound or [`after`](Self::after) on a large store: the match reads each input.
    pub fn input_contains(mut self, text: impl Into<String>) -> Self {
        self.input_contains = Some(text.into());
        self
    }

    /// Only runs submitted at or after `time`.
    pub fn created_after(mut self, time: SystemTime) -> Self {
        self.created_after = Some(time);
        self
    }

    /// Only runs submitted before `time`. The page starts at the last run submitted before
    /// it and goes down the ids, so runs are taken to be numbered in submission order (they
    /// are, unless the store's clock stepped back).
    pub fn created_before(mut self, time: SystemTime) -> Self {
        self.created_before = Some(time);
        self
    }

    /// Only the child runs that run `id` spawned
    /// ([`TaskContext::spawn`](crate::TaskContext::spawn)).
    pub fn parent(mut self, id: RunId) -> Self {
        self.parent = Some(id);
        self
    }

    /// At most this many runs.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }
}
