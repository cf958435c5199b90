//! [`RunFilter`]: which runs a listing returns.

use super::{RunId, RunStatus};

/// Which runs [`TaskRunner::list_runs`](crate::TaskRunner::list_runs) returns: newest first,
/// at most `limit` (default 100).
///
/// ```
/// use taskrunner::{RunFilter, RunStatus};
///
/// let failed_research = RunFilter::new().status(RunStatus::Failed).name("research").limit(20);
/// # drop(failed_research);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFilter {
    pub(crate) status: Option<RunStatus>,
    pub(crate) name: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) parent: Option<RunId>,
    pub(crate) limit: u32,
}

impl Default for RunFilter {
    fn default() -> Self {
        RunFilter {
            status: None,
            name: None,
            queue: None,
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
