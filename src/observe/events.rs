//! [`Event`]s: what happened to which task, streamed to every subscriber.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures::Stream;
use tokio::sync::broadcast;

use crate::id::{GroupId, TaskId};
use crate::status::Progress;

/// Something that happened to a task, from [`TaskRunner::subscribe`](crate::TaskRunner::subscribe).
///
/// ```
/// use taskrunner::{EventKind, Task, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let mut events = runner.subscribe();
/// let handle = runner.enqueue_task(Task::new("hello", |_ctx| async { Ok::<_, String>(()) }).call_id("call_1"))?;
/// let event = events.recv().await.unwrap()?;
/// assert_eq!((event.id, event.call_id.as_str(), event.name.as_str()), (handle.id(), "call_1", "hello"));
/// assert_eq!(event.kind, EventKind::Enqueued);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event {
    /// The task.
    pub id: TaskId,
    /// Its call id.
    pub call_id: String,
    /// Its name.
    pub name: String,
    /// Its queue.
    pub queue: String,
    /// When it happened.
    pub at: SystemTime,
    /// What happened.
    pub kind: EventKind,
    /// The [schedule](crate::Schedule) behind it: set on the events of a schedule's runs
    /// and on the schedule's own events (`Schedule*` kinds), `None` otherwise.
    pub schedule: Option<String>,
    /// The [group](crate::TaskGroup) of the task, if it was enqueued into one.
    pub group: Option<GroupId>,
}

/// What happened to a task. Every task gets exactly one terminal event ([`Completed`],
/// [`Failed`], [`TimedOut`], [`Panicked`], [`Cancelled`], or [`Waiting`] for a durable run's
/// attempt that parked), however it ended.
///
/// [`Completed`]: EventKind::Completed
/// [`Failed`]: EventKind::Failed
/// [`TimedOut`]: EventKind::TimedOut
/// [`Panicked`]: EventKind::Panicked
/// [`Cancelled`]: EventKind::Cancelled
/// [`Waiting`]: EventKind::Waiting
///
/// ```
/// use taskrunner::EventKind;
///
/// assert!(EventKind::Completed.is_terminal());
/// assert!(!EventKind::Started { attempt: 1 }.is_terminal());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// The task entered its queue.
    Enqueued,
    /// The task was enqueued with a [`delay`](crate::Task::delay): it waits until `until`
    /// before entering its queue's order.
    Delayed {
        /// Its start time.
        until: SystemTime,
    },
    /// An attempt started.
    Started {
        /// The attempt's number, from 1.
        attempt: u32,
    },
    /// An attempt failed; the task waits `delay` before the next.
    Retrying {
        /// The attempt that failed.
        attempt: u32,
        /// The wait before the next attempt.
        delay: Duration,
        /// Why it failed.
        error: String,
    },
    /// The handler reported progress (coalesced: at most one event every 100 ms a task).
    Progress(Progress),
    /// The handler returned `Ok`.
    Completed,
    /// The handler returned an error, with no retry left.
    Failed {
        /// The error's message.
        error: String,
    },
    /// The last attempt ran past its timeout.
    TimedOut,
    /// The handler panicked.
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// The task was cancelled, or stopped by `shutdown_now`.
    Cancelled,
    /// A durable run's attempt parked on a wait ([`wait_for_signal`](crate::TaskContext::wait_for_signal),
    /// a durable `sleep`, a `join`): this task ends here, holding nothing, and its run
    /// waits in the store ([`RunStatus::Waiting`](crate::RunStatus::Waiting)); the process that
    /// claims the run again resumes it as a new task. Not a completion: the metrics count it
    /// in `taskrunner_tasks_parked_total`, and `on_complete`/`on_error` are not called.
    Waiting,
    /// The handler said something with [`TaskContext::emit`](crate::TaskContext::emit)
    /// (`live: false`) or [`emit_live`](crate::TaskContext::emit_live) (`live: true`). A
    /// durable run's emits are also in its stored stream,
    /// [`TaskRunner::run_events`](crate::TaskRunner::run_events).
    Emitted {
        /// What it is about (`"plan"`, `"tool_call"`, `"token"`, ..).
        topic: String,
        /// The value, as JSON.
        value: serde_json::Value,
        /// Sent with `emit_live`: not stored.
        live: bool,
    },
    /// A [schedule](crate::Schedule) fired and enqueued its run, task `id`.
    ///
    /// In the schedule events (`Schedule*`), [`Event::name`] and [`Event::schedule`] are the
    /// schedule's name, and [`Event::id`] is its run (for `ScheduleFired`, the new one; for
    /// the others, its latest run, or task id 0 before its first run).
    ScheduleFired {
        /// The fire time it was due at by its timetable (before jitter), or the moment it
        /// was triggered.
        nominal: SystemTime,
    },
    /// A schedule's fire found its previous run unfinished and was skipped (or dropped for
    /// one already buffered), by its [`Overlap`](crate::Overlap) policy.
    ScheduleSkipped {
        /// The fire time it was due at.
        nominal: SystemTime,
    },
    /// A schedule was paused.
    SchedulePaused,
    /// A paused schedule was resumed.
    ScheduleResumed,
    /// A schedule stopped: by `stop`, by shutdown, after its last run (`max_runs`), or
    /// past its end time. It fires no more; a run already started goes on.
    ScheduleStopped,
}

impl EventKind {
    /// Whether this event ends its task's stream of events.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            EventKind::Completed
                | EventKind::Failed { .. }
                | EventKind::TimedOut
                | EventKind::Panicked { .. }
                | EventKind::Cancelled
                | EventKind::Waiting
        )
    }
}

/// A subscriber fell behind and missed this many events: the channel keeps only the most
/// recent ones (see [`TaskRunnerBuilder::event_capacity`](crate::TaskRunnerBuilder::event_capacity)).
/// The stream goes on with the oldest event still kept.
///
/// ```
/// use taskrunner::{Lagged, Task, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::builder().event_capacity(2).build()?;
/// let mut events = runner.subscribe();
/// for _ in 0..3 {
///     runner.enqueue_task(Task::new("t", |_ctx| async { Ok::<_, String>(()) }))?.await?;
/// }
/// // Nine events went out; this subscriber read none, and the channel kept two.
/// assert_eq!(events.recv().await.unwrap(), Err(Lagged(7)));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the event subscriber fell behind and missed {0} events")]
pub struct Lagged(pub u64);

/// A stream of [`Event`]s, from [`TaskRunner::subscribe`](crate::TaskRunner::subscribe).
///
/// It yields `Ok(event)` in the order events happened, and `Err(Lagged(n))` where it fell
/// more than the channel's capacity behind. A slow subscriber never slows the runner. It
/// sees only events that happen after it subscribed, and ends when the runner (its last
/// clone) is dropped, after the events sent before.
///
/// Read it with [`recv`](Self::recv), which needs no import, or as a
/// [`Stream`](futures::Stream) with `futures::StreamExt` in scope (`next`, `filter`, ..).
///
/// ```
/// use taskrunner::{EventKind, Task, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let mut events = runner.subscribe();
/// let _handle = runner.enqueue_task(Task::new("hello", |_ctx| async { Ok::<_, String>(()) }))?;
/// let mut kinds = Vec::new();
/// while let Some(event) = events.recv().await {
///     let event = event?;
///     let done = event.kind.is_terminal();
///     kinds.push(event.kind);
///     if done {
///         break;
///     }
/// }
/// assert_eq!(kinds, [EventKind::Enqueued, EventKind::Started { attempt: 1 }, EventKind::Completed]);
/// # Ok(())
/// # }
/// ```
pub struct EventStream {
    inner: Pin<Box<dyn Stream<Item = Result<Event, Lagged>> + Send>>,
    _subscribed: Subscribed,
}

impl EventStream {
    /// The next event: the same as `StreamExt::next`.
    pub async fn recv(&mut self) -> Option<Result<Event, Lagged>> {
        std::future::poll_fn(|cx| self.inner.as_mut().poll_next(cx)).await
    }
}

impl Stream for EventStream {
    type Item = Result<Event, Lagged>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

/// Counts a subscriber while it lives.
struct Subscribed(Arc<AtomicUsize>);

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The sending side, shared by the runner, its queues and its tasks.
pub(crate) struct Events {
    /// `None` once the runner is dropped: the streams then end, after the events already sent.
    sender: RwLock<Option<broadcast::Sender<Event>>>,
    /// Subscribers alive. Checked before an event is built, so that a runner nobody listens
    /// to pays one atomic load an event, not a lock and a few strings.
    subscribers: Arc<AtomicUsize>,
}

impl Events {
    pub(crate) fn new(capacity: usize) -> Events {
        Events {
            sender: RwLock::new(Some(broadcast::Sender::new(capacity.max(1)))),
            subscribers: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub(crate) fn subscribe(&self) -> EventStream {
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        let receiver = self
            .sender
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(broadcast::Sender::subscribe);
        let inner = futures::stream::unfold(receiver, |receiver| async move {
            let mut receiver = receiver?;
            match receiver.recv().await {
                Ok(event) => Some((Ok(event), Some(receiver))),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    Some((Err(Lagged(n)), Some(receiver)))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        EventStream {
            inner: Box::pin(futures::StreamExt::fuse(inner)),
            _subscribed: Subscribed(Arc::clone(&self.subscribers)),
        }
    }

    /// Sends `kind` for `header`'s task, if anyone listens. Inlined: with no subscriber it
    /// is one load and a branch on the hot path.
    #[inline]
    pub(crate) fn emit(&self, task: &dyn Subject, kind: impl FnOnce() -> EventKind) {
        if self.subscribers.load(Ordering::Relaxed) != 0 {
            self.send(task, kind());
        }
    }

    #[cold]
    #[inline(never)]
    fn send(&self, task: &dyn Subject, kind: EventKind) {
        let event = Event {
            id: task.id(),
            call_id: task.call_id().to_owned(),
            name: task.name().to_owned(),
            queue: task.queue().to_owned(),
            at: SystemTime::now(),
            kind,
            schedule: task.schedule().map(str::to_owned),
            group: task.group(),
        };
        self.deliver(event);
    }

    /// Sends `event` unless the runner is gone.
    fn deliver(&self, event: Event) {
        let sender = self
            .sender
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sender) = sender.as_ref() {
            // An error only means every receiver has gone meanwhile.
            let _ = sender.send(event);
        }
    }

    /// Ends every stream once it has yielded the events already sent.
    pub(crate) fn close(&self) {
        let sender = self
            .sender
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        drop(sender);
    }

    /// Sends a schedule's own event (`Schedule*` kinds), if anyone listens.
    pub(crate) fn emit_schedule(
        &self,
        schedule: &str,
        task: Option<TaskId>,
        at: SystemTime,
        kind: impl FnOnce() -> EventKind,
    ) {
        if self.subscribers.load(Ordering::Relaxed) != 0 {
            let event = Event {
                id: task.unwrap_or(TaskId::from_u64(0)),
                call_id: String::new(),
                name: schedule.to_owned(),
                queue: String::new(),
                at,
                kind: kind(),
                schedule: Some(schedule.to_owned()),
                group: None,
            };
            self.deliver(event);
        }
    }
}

/// A task as the event stream sees it.
pub(crate) trait Subject {
    fn id(&self) -> TaskId;
    fn call_id(&self) -> &str;
    fn name(&self) -> &str;
    fn queue(&self) -> &str;
    /// The schedule whose run the task is, if any.
    fn schedule(&self) -> Option<&str>;
    /// The group the task is a member of, if any.
    fn group(&self) -> Option<GroupId>;
}
