//! [`TaskGroup`]: the tasks of one unit of work (an agent's turn), enqueued, watched, capped
//! and cancelled together.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::enqueue::Room;
use super::{Rejected, Shared, TaskHandle, TaskRunner};
use crate::error::{EnqueueError, TaskError};
use crate::id::GroupId;
use crate::status::TaskInfo;
use crate::task::{GroupCore, RetryPredicate, Task, TaskContext};

mod engine;
mod stats;

pub use stats::GroupStats;

/// The tasks of one unit of work, such as the tool calls of one agent turn: enqueued
/// together, watched together, capped together and cancelled together.
///
/// Made by [`TaskRunner::group`]; cheap to clone (every clone is the same group). A group
/// may hold tasks of several queues: each still waits for a slot of its own queue, under
/// that queue's limit and order.
///
/// - **Tagging**: every member's [`TaskInfo::group`] and [`Event::group`](crate::Event::group)
///   carry the group's [`id`](Self::id).
/// - **A cap**: with [`concurrency(n)`](Self::concurrency), at most `n` members hold a slot
///   at once, across queues. A member its queue would start while the group is at its cap
///   steps out of the queue's order (its [`waiting_for`](TaskInfo::waiting_for) reads
///   [`GroupLimit`](crate::WaitReason::GroupLimit)), so it holds up no other task of that
///   queue, and goes back in its place when a member ends its attempt.
/// - **Cancel**: [`cancel`](Self::cancel) is atomic with respect to the group: no member
///   starts once it has begun, and tasks enqueued into the group afterwards are refused
///   ([`EnqueueError::GroupCancelled`]). It ends the waiting members first, then the running
///   ones.
/// - **Cancel on drop**: with [`cancel_on_drop`](Self::cancel_on_drop), dropping the last
///   clone cancels what is left, so aborting the future that owns the turn stops its tools.
///
/// # Comparison to cancelling tasks one by one
///
/// Cancelling a turn's tasks in a loop races with the queues: cancelling a running task frees
/// its slot, which goes to the next waiting task, perhaps one of the same turn that the loop
/// has not reached yet, and it starts. A group's cancel closes the group first, so that no
/// member can take a slot from then on.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{QueueConfig, Task, TaskContext, TaskError, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::builder().queue("tools", QueueConfig::new().concurrency(8)).build()?;
/// let turn = runner.group().concurrency(2);
/// let tool = |secs: u64| Task::new("tool", move |_: TaskContext| async move {
///     tokio::time::sleep(Duration::from_secs(secs)).await;
///     Ok::<_, String>(secs)
/// }).queue("tools");
/// let handles: Vec<_> = (1..=4).map(|s| turn.enqueue_task(tool(s))).collect::<Result<_, _>>()?;
/// assert_eq!((turn.stats().running, turn.stats().pending), (2, 2), "the cap, not the queue, holds two back");
///
/// tokio::time::sleep(Duration::from_millis(1500)).await; // the first tool is done
/// assert_eq!(turn.cancel(), 3, "the user aborted: the other three end");
/// assert!(turn.enqueue_task(tool(1)).is_err(), "a cancelled group takes no new task");
/// let results: Vec<_> = futures::future::join_all(handles).await;
/// assert_eq!(results[0].as_ref().unwrap(), &1);
/// assert!(results[1..].iter().all(|r| matches!(r, Err(TaskError::Cancelled))));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TaskGroup {
    inner: Arc<Inner>,
}

/// Shared by the group's clones (not by its tasks, which hold the core alone): its drop is
/// the last clone's.
struct Inner {
    core: Arc<GroupCore>,
    shared: Arc<Shared>,
    cancel_on_drop: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.cancel_on_drop.load(Ordering::SeqCst) {
            self.shared.cancel_group(&self.core);
        }
    }
}

// ===== impl TaskRunner =====

impl TaskRunner {
    /// A new, empty [`TaskGroup`] of this runner: no cap, not cancelled on drop.
    ///
    /// ```
    /// use taskrunner::{Task, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let turn = runner.group();
    /// let h = turn.enqueue_task(Task::new("search", |_ctx| async { Ok::<_, String>(1) }))?;
    /// assert_eq!(runner.get_status(h.id()).unwrap().group, Some(turn.id()));
    /// h.await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn group(&self) -> TaskGroup {
        TaskGroup {
            inner: Arc::new(Inner {
                core: Arc::new(GroupCore::new()),
                shared: Arc::clone(&self.shared),
                cancel_on_drop: AtomicBool::new(false),
            }),
        }
    }
}

// ===== impl TaskGroup =====

impl TaskGroup {
    /// The group's id, in its members' [`TaskInfo::group`] and events.
    pub fn id(&self) -> GroupId {
        self.inner.core.id
    }

    /// Caps the group: at most `limit` of its members hold a slot at once, across all
    /// queues (0 counts as 1). A member that would exceed it waits outside its queue's order,
    /// delaying no other task. Raising the cap starts held members at once; lowering it lets
    /// running members finish. Applies to every clone.
    pub fn concurrency(self, limit: usize) -> TaskGroup {
        if self.inner.core.set_cap(limit) {
            self.inner.shared.pump(&self.inner.core);
        }
        self
    }

    /// Makes dropping the group's last clone [`cancel`](Self::cancel) the members left (its
    /// tasks do not keep the group alive). Applies to every clone.
    ///
    /// ```
    /// use taskrunner::{Task, TaskError, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let turn = runner.group().cancel_on_drop();
    /// let h = turn.enqueue_task(Task::new("slow", |_ctx| async {
    ///     std::future::pending::<Result<(), String>>().await
    /// }))?;
    /// drop(turn); // the agent's run was aborted
    /// assert!(matches!(h.await, Err(TaskError::Cancelled)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel_on_drop(self) -> TaskGroup {
        self.inner.cancel_on_drop.store(true, Ordering::SeqCst);
        self
    }

    /// Enqueues `task` as a member, as [`TaskRunner::enqueue_task`] does.
    ///
    /// # Errors
    ///
    /// Those of [`TaskRunner::enqueue_task`], and [`EnqueueError::GroupCancelled`] once the
    /// group was cancelled. A task enqueued while the group is being cancelled is either
    /// refused or ends [`Cancelled`](crate::TaskError::Cancelled) at once, never run.
    pub fn enqueue_task<F, Fut, P, T, E>(
        &self,
        task: Task<F, P>,
    ) -> Result<TaskHandle<T, E>, EnqueueError>
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        P: RetryPredicate<E>,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        self.try_enqueue_task(task).map_err(Rejected::into_error)
    }

    /// Like [`enqueue_task`](Self::enqueue_task), but a refused task is handed back whole
    /// (as [`TaskRunner::try_enqueue_task`] does).
    ///
    /// # Errors
    ///
    /// The same as [`enqueue_task`](Self::enqueue_task), with the task.
    pub fn try_enqueue_task<F, Fut, P, T, E>(
        &self,
        task: Task<F, P>,
    ) -> Result<TaskHandle<T, E>, Rejected<F, P>>
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        P: RetryPredicate<E>,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        self.runner()
            .enqueue(task, Room::Take, Some(&self.inner.core))
    }

    /// Like [`enqueue_task`](Self::enqueue_task), but waits for room in a full queue (as
    /// [`TaskRunner::enqueue_task_wait`] does).
    ///
    /// # Errors
    ///
    /// The same as [`enqueue_task`](Self::enqueue_task), except `QueueFull`.
    pub fn enqueue_task_wait<F, Fut, P, T, E>(
        &self,
        task: Task<F, P>,
    ) -> impl Future<Output = Result<TaskHandle<T, E>, EnqueueError>> + Send + 'static
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        P: RetryPredicate<E>,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        self.runner()
            .enqueue_wait(task, Some(Arc::clone(&self.inner.core)))
    }

    /// Enqueues `task` as a member and awaits it, as [`TaskRunner::run`] does.
    pub fn run<F, Fut, P, T, E>(
        &self,
        task: Task<F, P>,
    ) -> impl Future<Output = Result<T, TaskError<E>>> + Send + 'static
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        P: RetryPredicate<E>,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let handle = self.enqueue_task(task).map(TaskHandle::cancel_on_drop);
        async move { handle?.await }
    }

    /// The status of its members: the live ones and the last ones to end (up to 1,024, while
    /// the runner keeps their records), by id.
    pub fn list(&self) -> Vec<TaskInfo> {
        let shared = &self.inner.shared;
        let core = &self.inner.core;
        let mut infos: Vec<TaskInfo> = core
            .members()
            .iter()
            .map(|job| shared.info(&**job))
            .collect();
        for id in core.recent() {
            if let Some(job) = shared.registry.get(id) {
                infos.push(shared.info(&*job));
            }
        }
        infos.sort_unstable_by_key(|info| info.id);
        infos.dedup_by_key(|info| info.id);
        infos
    }

    /// Its members' counts now.
    pub fn stats(&self) -> GroupStats {
        GroupStats::of(&self.inner.core)
    }

    /// Resolves when the group has no unfinished member (at once if it has none). Members
    /// enqueued meanwhile are waited for too.
    pub fn wait_idle(&self) -> impl Future<Output = ()> + Send + 'static {
        let core = Arc::clone(&self.inner.core);
        async move { core.wait_idle().await }
    }

    /// Cancels the group: from the moment this begins no member starts, and tasks enqueued
    /// into the group are refused ([`EnqueueError::GroupCancelled`]). Waiting members
    /// (pending, delayed, retrying, held at the cap) end at once, before any running member
    /// is stopped, so no slot a member frees goes to another member. Running members are
    /// stopped as [`TaskHandle::cancel`] stops them. Returns how many members this ended
    /// (not those that had finished or were being cancelled already).
    pub fn cancel(&self) -> usize {
        self.inner.shared.cancel_group(&self.inner.core)
    }

    /// Whether [`cancel`](Self::cancel) was called (or the group was dropped with
    /// `cancel_on_drop`).
    pub fn is_cancelled(&self) -> bool {
        self.inner.core.is_cancelled()
    }

    fn runner(&self) -> TaskRunner {
        TaskRunner::from_shared(Arc::clone(&self.inner.shared))
    }
}

impl fmt::Debug for TaskGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let core = &self.inner.core;
        f.debug_struct("TaskGroup")
            .field("id", &core.id)
            .field("concurrency", &core.cap())
            .field("running", &core.running())
            .field("cancelled", &core.is_cancelled())
            .finish()
    }
}
