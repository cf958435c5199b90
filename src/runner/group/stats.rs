//! [`GroupStats`]: a task group's counts.

use crate::task::{GroupCore, Phase};

/// A snapshot of a [`TaskGroup`](crate::TaskGroup)'s members, from
/// [`TaskGroup::stats`](crate::TaskGroup::stats).
///
/// ```
/// use taskrunner::{Task, TaskContext, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let turn = runner.group();
/// turn.enqueue_task(Task::new("t", |_: TaskContext| async { Ok::<_, String>(()) }))?.await?;
/// let stats = turn.stats();
/// assert_eq!((stats.pending, stats.running, stats.finished), (0, 0, 1));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupStats {
    /// Members waiting to start: pending in their queue, held at the group's cap, delayed,
    /// or waiting out a retry's backoff.
    pub pending: usize,
    /// Members holding a slot (running, or being stopped).
    pub running: usize,
    /// Members that gave their slot back while they wait for something.
    pub waiting: usize,
    /// Members that have ended.
    pub finished: u64,
    /// The group's cap, if it has one.
    pub concurrency: Option<usize>,
    /// Whether the group was cancelled.
    pub cancelled: bool,
}

impl GroupStats {
    pub(super) fn of(core: &GroupCore) -> GroupStats {
        let mut stats = GroupStats {
            pending: 0,
            running: 0,
            waiting: 0,
            finished: 0,
            concurrency: core.cap(),
            cancelled: core.is_cancelled(),
        };
        for job in core.members() {
            match job.header().phase() {
                Phase::Running | Phase::Cancelling => stats.running += 1,
                Phase::Waiting => stats.waiting += 1,
                Phase::Completed | Phase::Failed | Phase::Cancelled => {}
                _ => stats.pending += 1,
            }
        }
        stats.finished = core.ended();
        stats
    }
}
