//! [`TaskId`]: a task's identity.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A task's identity, unique within the process. Ids grow in enqueue order.
///
/// Displayed as its number (`42`).
///
/// ```
/// use taskrunner::{Task, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let a = runner.enqueue_task(Task::new("a", |_ctx| async { Ok::<_, String>(()) }))?;
/// let b = runner.enqueue_task(Task::new("b", |_ctx| async { Ok::<_, String>(()) }))?;
/// assert!(a.id() < b.id(), "ids grow in enqueue order");
/// assert_eq!(a.id().to_string(), a.id().as_u64().to_string());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(u64);

impl TaskId {
    pub(crate) fn next() -> TaskId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TaskId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a number.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    pub(crate) const fn from_u64(id: u64) -> TaskId {
        TaskId(id)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A [task group](crate::TaskGroup)'s identity, unique within the process.
///
/// Displayed as `g` and its number (`g7`); carried by every member's
/// [`TaskInfo::group`](crate::TaskInfo::group) and [`Event::group`](crate::Event::group).
///
/// ```
/// use taskrunner::TaskRunner;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let runner = TaskRunner::new();
/// let (a, b) = (runner.group(), runner.group());
/// assert_ne!(a.id(), b.id());
/// assert_eq!(a.id().to_string(), format!("g{}", a.id().as_u64()));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(u64);

impl GroupId {
    pub(crate) fn next() -> GroupId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        GroupId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The id as a number.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}", self.0)
    }
}
