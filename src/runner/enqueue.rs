//! [`TaskRunner::enqueue_task`]: how a task gets into its queue.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use super::worker;
use super::{Rejected, TaskHandle, TaskRunner};
use crate::error::EnqueueError;
use crate::id::TaskId;
use crate::observe::metrics;
use crate::observe::EventKind;
use crate::runtime::timers_enabled;
use crate::sync::lock_std;
use crate::task::{
    CancelCause, GroupCore, Header, Parts, RetryPredicate, Task, TaskCell, TaskContext,
};

impl TaskRunner {
    /// Puts `task` in its queue and returns a handle to await, inspect or cancel it.
    ///
    /// If the queue has a free slot the task takes it before this returns (its status is
    /// already [`Running`](crate::TaskStatus::Running)); otherwise it waits in the queue's
    /// priority order. A task with a [`delay`](Task::delay) is
    /// [`Delayed`](crate::TaskStatus::Delayed) until its start time.
    ///
    /// From inside a handler, do not enqueue into the handler's own queue and await the
    /// handle: when that queue is full of handlers waiting like this, none ever frees its slot
    /// (see [`TaskHandle`]'s section on this deadlock for the ways out; debug builds warn).
    ///
    /// ```
    /// use taskrunner::{QueueConfig, Task, TaskRunner, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::builder().queue("llm", QueueConfig::new().concurrency(1)).build()?;
    /// let ask = |q: &'static str| Task::new("ask", move |_ctx| async move { Ok::<_, String>(q.len()) }).queue("llm");
    /// let first = runner.enqueue_task(ask("why"))?;
    /// let second = runner.enqueue_task(ask("how so"))?;
    /// assert_eq!((first.status(), second.status()), (TaskStatus::Running, TaskStatus::Pending));
    /// assert_eq!((first.await?, second.await?), (3, 6));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// - [`EnqueueError::UnknownQueue`]: the task's queue was not declared.
    /// - [`EnqueueError::ZeroTimeout`]: the task's timeout is zero.
    /// - [`EnqueueError::ShuttingDown`]: [`shutdown`](Self::shutdown) has begun.
    /// - [`EnqueueError::NoRuntime`]: called outside a tokio runtime, and the runner was built
    ///   outside one too, or the runtime it was built in (or last used from) has shut down.
    /// - [`EnqueueError::TimersDisabled`]: the task has a timeout or a retry policy and the
    ///   runtime was built without `enable_time()`.
    /// - [`EnqueueError::QueueFull`]: the queue has [`max_pending`](crate::QueueConfig::max_pending)
    ///   tasks waiting already.
    /// - [`EnqueueError::Duplicate`]: a task with the same [`dedup_key`](Task::dedup_key) is
    ///   live.
    ///
    /// A refused task is dropped with its handler, never run. To get it back instead (to
    /// retry later), use [`try_enqueue_task`](Self::try_enqueue_task).
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
        self.enqueue(task, Room::Take, None)
            .map_err(Rejected::into_error)
    }

    /// Enqueues `task`, a member of `group` if given; `room` says whether the caller took
    /// its place under `max_pending` already.
    pub(super) fn enqueue<F, Fut, P, T, E>(
        &self,
        task: Task<F, P>,
        room: Room,
        group: Option<&Arc<GroupCore>>,
    ) -> Result<TaskHandle<T, E>, Rejected<F, P>>
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        P: RetryPredicate<E>,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let room_taken = room == Room::Held;
        let shared = &self.shared;
        let Some(queue) = shared.queue(task.queue_name()) else {
            let error = EnqueueError::UnknownQueue(task.queue_name().to_owned());
            return Err(Rejected { error, task });
        };
        let give_back = |room_held: bool| {
            if let (true, Some(room)) = (room_held, queue.room()) {
                room.add_permits(1);
            }
        };
        if let Some(group) = group.filter(|g| g.is_cancelled()) {
            give_back(room_taken);
            let error = EnqueueError::GroupCancelled { group: group.id };
            return Err(Rejected { error, task });
        }
        if task
            .options()
            .and_then(|o| o.timeout)
            .is_some_and(|t| t.is_zero())
        {
            give_back(room_taken);
            let error = EnqueueError::ZeroTimeout {
                task: task.name().to_owned(),
            };
            return Err(Rejected { error, task });
        }
        if let Err(error) = queue.check_cost(&task) {
            give_back(room_taken);
            return Err(Rejected { error, task });
        }
        if let Err(error) = shared.ensure_runtime() {
            give_back(room_taken);
            return Err(Rejected { error, task });
        }
        let mut task = task;
        if !shared.cancel_grace.is_zero() {
            let options = task.options_mut();
            options.cancel_grace.get_or_insert(shared.cancel_grace);
        }
        if task.options().is_some_and(|o| {
            o.timeout.is_some() || o.retry.is_some() || o.cancel_grace.is_some_and(|g| !g.is_zero())
        }) && !timers_enabled(shared.runtime.handle().as_ref())
        {
            give_back(room_taken);
            let error = EnqueueError::TimersDisabled {
                task: task.name().to_owned(),
            };
            return Err(Rejected { error, task });
        }
        let flow = task.options().map(|o| &o.flow);
        let delay = flow.and_then(|f| f.delay).filter(|d| !d.is_zero());
        // A place under max_pending, taken before the task is built so that a refusal can
        // hand it back whole. A delayed task takes one when its delay ends.
        let mut room_held = room_taken;
        if room_taken && delay.is_some() {
            give_back(true);
            room_held = false;
        }
        if let (false, None, Some(room)) = (room_taken, delay, queue.room()) {
            match room.try_acquire() {
                Ok(permit) => {
                    permit.forget();
                    room_held = true;
                }
                Err(_) => {
                    let error = EnqueueError::QueueFull {
                        queue: queue.name().to_owned(),
                        max_pending: queue.max_pending(),
                    };
                    return Err(Rejected { error, task });
                }
            }
        }
        // Counted live before `closed` is read; shutdown sets `closed` before reading `live`,
        // so it either sees this task or this sees it closed.
        shared.live.fetch_add(1, Ordering::SeqCst);
        if shared.closed.load(Ordering::SeqCst) {
            shared.release();
            give_back(room_held);
            let error = EnqueueError::ShuttingDown;
            return Err(Rejected { error, task });
        }
        let id = TaskId::next();
        if let Some(key) = flow.and_then(|f| f.dedup_key.as_deref()) {
            let mut live = lock_std(&shared.dedup);
            if let Some(&existing) = live.get(key) {
                drop(live);
                shared.release();
                give_back(room_held);
                let error = EnqueueError::Duplicate {
                    key: key.to_owned(),
                    existing,
                };
                return Err(Rejected { error, task });
            }
            live.insert(key.into(), id);
        }

        let Parts {
            name,
            call_id,
            priority,
            options,
            handler,
            retry_if,
        } = task.into_parts();
        let tag = Arc::clone(queue.tag());
        // The group set in place: `Header::with_group` moved (copied) the whole header.
        let mut header = Header::new(id, name, call_id, tag, priority, options);
        header.group = group.map(Arc::clone);
        let cell = Arc::new(TaskCell::new(header, handler, retry_if));
        if cell.header.call_given {
            shared.calls.insert(&cell.header);
        }
        // A member before it can start: its group's cancel sees it from here on. A cancel
        // that came after the check above refuses it here: it is cancelled at once below.
        let joined = group.is_none_or(|g| {
            let job: Arc<dyn crate::task::Job> = cell.clone();
            g.join(&job)
        });
        // Before the task can be found (by a cancel) or started (by a worker): nothing about
        // it is reported before this.
        let events = &queue.observers().events;
        events.emit(&cell.header, || EventKind::Enqueued);
        // A new task outside a group is indexed by its queue (or found in its order).
        if delay.is_some() || group.is_some() {
            shared.registry.insert(cell.clone());
        }
        match delay {
            Some(delay) => {
                if queue.delay(&cell.header) {
                    cell.header.report_delayed(delay);
                    shared.spawn(worker::delayed(Arc::clone(shared), cell.clone(), delay));
                }
            }
            None => {
                if let Some(job) = queue.admit_new(cell.clone()) {
                    shared.start(job);
                }
            }
        }
        metrics::enqueued(&**queue);
        fence(Ordering::SeqCst);
        if shared.aborting.load(Ordering::SeqCst) {
            shared.cancel(&*cell, CancelCause::Shutdown);
        }
        if !joined {
            shared.cancel(&*cell, CancelCause::User);
        }
        Ok(TaskHandle::new(cell, Arc::clone(shared)))
    }
}

/// A new task's place under its queue's `max_pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Room {
    /// Take one (or refuse the task if there is none).
    Take,
    /// The caller took it already ([`TaskRunner::enqueue_task_wait`]).
    Held,
}
