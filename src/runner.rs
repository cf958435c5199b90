//! [`TaskRunner`]: named queues of tasks, run under per-queue concurrency limits.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::Poll;

use tokio::sync::Notify;

use crate::events::{EventKind, EventStream, Events};
use crate::job::{CancelFrom, Cause, End, Header, Job, TaskCell};
use crate::notify::{Inbox, Notification};
use crate::queue::Queue;
use crate::registry::Registry;
use crate::runtime::{timers_enabled, Fallback};
use crate::status::Phase;
use crate::sync::lock_std;
use crate::task::RetryPredicate;
use crate::{
    worker, ConfigError, EnqueueError, QueueConfig, QueueStats, Rejected, Task, TaskContext,
    TaskHandle, TaskId, TaskInfo,
};

/// The queue every runner has unless its builder configures it otherwise.
pub const DEFAULT_QUEUE: &str = "main";

/// How many finished tasks' records are kept by default.
pub const DEFAULT_RETAIN_FINISHED: usize = 10_000;

/// How many events a subscriber may fall behind by default before it misses some.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// How many undrained notifications the inbox keeps by default.
pub const DEFAULT_NOTIFICATION_CAPACITY: usize = 1000;

/// The most characters a notification's summary has by default, the `…` of a cut included.
pub const DEFAULT_SUMMARY_LEN: usize = 200;

/// Runs tasks in named queues, each with its own concurrency limit and priority order.
///
/// A `TaskRunner` is a cheap handle: clone it freely and share it between tasks and threads;
/// every clone drives the same queues. It needs a tokio runtime (the multi-thread or the
/// current-thread one, with time enabled if tasks use timeouts or retries).
///
/// # When the runtime goes away
///
/// Like a `JoinHandle`, which resolves with an error when its runtime shuts down, every
/// [`TaskHandle`] resolves when the runtime its task was running on shuts down: the tasks
/// running there, waiting for a slot their workers held, or waiting out a retry delay there
/// end [`TaskError::Shutdown`](crate::TaskError::Shutdown) (their futures are dropped first).
/// The runner itself stays usable: used from a new runtime, it runs new tasks there.
///
/// ```
/// use futures::FutureExt;
/// use taskrunner::{Task, TaskContext, TaskError, TaskRunner};
///
/// let runner = TaskRunner::new();
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let handle = rt.block_on(async {
///     runner.enqueue_task(Task::new("forever", |_: TaskContext| async {
///         std::future::pending::<Result<(), String>>().await
///     }))
/// }).unwrap();
/// drop(rt);
/// assert!(matches!(handle.now_or_never(), Some(Err(TaskError::Shutdown))));
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let again = rt.block_on(async {
///     let task = Task::new("again", |_: TaskContext| async { Ok::<_, String>(1) });
///     runner.enqueue_task(task).unwrap().await
/// });
/// assert_eq!(again.unwrap(), 1);
/// ```
///
/// # When to use it
///
/// Use it where a model's action calls, or any other jobs, must run concurrently but not
/// all at once: a rate-limited API gets a queue with a small limit, urgent calls get a higher
/// priority, flaky calls get a [`RetryPolicy`](crate::RetryPolicy), and the whole lot can be
/// watched ([`list_tasks`](Self::list_tasks)), cancelled and shut down.
///
/// # Comparison to a `Semaphore` loop
///
/// `tokio::spawn` behind a [`Semaphore`](tokio::sync::Semaphore) limits concurrency too, but
/// waiters are served first-come-first-served, a retry's sleep keeps its permit, there is no
/// record of what is running, and every waiting task is a parked tokio task. Here a waiting
/// task is an entry in its queue's order, a freed slot goes to the highest priority, a backoff holds no slot,
/// and every task has a status.
///
/// # Example
///
/// ```
/// use taskrunner::{QueueConfig, Task, TaskContext, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::builder()
///     .queue("llm", QueueConfig::new().concurrency(1))
///     .build()?;
///
/// let answer = runner.enqueue_task(
///     Task::new("ask", |_: TaskContext| async { Ok::<_, std::io::Error>("42") }).queue("llm"),
/// )?;
/// assert_eq!(answer.await?, "42");
/// runner.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TaskRunner {
    pub(crate) shared: Arc<Shared>,
    /// Shared by every clone of this runner and nothing else: when the last clone goes,
    /// event streams end, though handles and running tasks may keep `shared` alive. `None`
    /// in the runner handles the crate makes for itself ([`TaskRunner::from_shared`]).
    _owner: Option<Arc<Owner>>,
}

/// Ends the runner's event streams when the last clone of the runner is dropped.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.hub.events.close();
    }
}

/// Builds a [`TaskRunner`] with custom queues. From [`TaskRunner::builder`].
///
/// Every setting has a default: queue `main` with concurrency 3, 10,000 finished records
/// kept, 1024 events of slack per subscriber, 1000 undrained notifications, summaries of
/// 200 characters, no notification unless a task asks, no cancel grace.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{ConfigError, QueueConfig, TaskRunner};
///
/// # fn main() -> Result<(), ConfigError> {
/// let runner = TaskRunner::builder()
///     .queue("llm", QueueConfig::new().concurrency(1))
///     .queue("tools", QueueConfig::new().concurrency(8))
///     .retain_finished(1_000)
///     .notify_all(true)
///     .cancel_grace(Duration::from_secs(2))
///     .build()?;
/// assert_eq!(runner.queue_names(), ["llm", "main", "tools"]);
///
/// let bad = TaskRunner::builder().queue("llm", QueueConfig::new().concurrency(0)).build();
/// assert_eq!(bad.unwrap_err(), ConfigError::ZeroConcurrency { queue: "llm".into() });
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "call .build() to get a TaskRunner"]
pub struct TaskRunnerBuilder {
    queues: Vec<(String, QueueConfig)>,
    retain_finished: usize,
    event_capacity: usize,
    notification_capacity: usize,
    summary_len: usize,
    notify_all: bool,
    /// The durable store and the definitions this process runs from it.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) durable: crate::durable::Settings,
    cancel_grace: std::time::Duration,
}

/// What a task's own code (its context, its worker, its end) reports to: the event channel
/// and the notification inbox. Reached through the task's queue, so that tasks hold no
/// reference back to the runner.
pub(crate) struct Hub {
    pub(crate) events: Events,
    pub(crate) inbox: Inbox,
    /// Every task deposits a notification, not only those asking with `Task::notify`.
    pub(crate) notify_all: bool,
    /// The runner, for a queue's own timers (a rate limit, a pause that runs out) to start
    /// tasks. Unset when a queue is driven alone in tests.
    runner: OnceLock<Weak<Shared>>,
}

impl Hub {
    fn new(settings: &TaskRunnerBuilder) -> Hub {
        Hub {
            events: Events::new(settings.event_capacity),
            inbox: Inbox::new(settings.notification_capacity, settings.summary_len),
            notify_all: settings.notify_all,
            runner: OnceLock::new(),
        }
    }

    pub(crate) fn runner(&self) -> Option<Arc<Shared>> {
        self.runner.get()?.upgrade()
    }
}

/// A hub with the default settings, for driving a queue alone in tests.
#[cfg(test)]
impl Default for Hub {
    fn default() -> Hub {
        Hub::new(&TaskRunner::builder())
    }
}

/// What every clone of a runner, its workers and its handles share.
pub(crate) struct Shared {
    queues: HashMap<Box<str>, Arc<Queue>, BuildHasherDefault<NameHasher>>,
    /// The same queues, scanned instead of hashed when there are few.
    queue_list: Vec<Arc<Queue>>,
    registry: Registry,
    hub: Arc<Hub>,
    /// Tasks enqueued and not yet finished: pending, running or retrying.
    live: AtomicUsize,
    idle: Notify,
    /// Set by shutdown: no new tasks.
    closed: AtomicBool,
    /// Set by shutdown_now: a task that slips in anyway is cancelled.
    aborting: AtomicBool,
    /// The runtime to spawn on when called from outside one, while it lives.
    runtime: Arc<Fallback>,
    /// The cancel grace of tasks that set none.
    cancel_grace: std::time::Duration,
    /// Workers waiting a moment for a start, each to be handed a job instead of a spawn.
    parked: std::sync::Mutex<Vec<Arc<Parking>>>,
    /// The live task of each dedup key (`Task::dedup_key`).
    dedup: std::sync::Mutex<HashMap<Box<str>, TaskId>>,
    /// The runner's recurring schedules, by name.
    pub(crate) schedules: crate::schedule::Schedules,
    /// The durable side, if the runner was built with a store.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) durable: std::sync::OnceLock<Arc<crate::durable::Durable>>,
}

/// Where a parked worker is handed its next job.
#[derive(Default)]
pub(crate) struct Parking {
    job: std::sync::Mutex<Option<Arc<dyn Job>>>,
    waker: futures::task::AtomicWaker,
}

// ===== impl TaskRunner =====

impl TaskRunner {
    /// A runner with one queue, `main`, of concurrency 3.
    pub fn new() -> Self {
        let defaults = TaskRunner::builder();
        TaskRunner::assemble(vec![(DEFAULT_QUEUE.into(), QueueConfig::new())], &defaults)
    }

    /// A builder for a runner with more queues, or other limits.
    pub fn builder() -> TaskRunnerBuilder {
        TaskRunnerBuilder {
            queues: Vec::new(),
            retain_finished: DEFAULT_RETAIN_FINISHED,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            notification_capacity: DEFAULT_NOTIFICATION_CAPACITY,
            summary_len: DEFAULT_SUMMARY_LEN,
            notify_all: false,
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            durable: Default::default(),
            cancel_grace: std::time::Duration::ZERO,
        }
    }

    fn assemble(queues: Vec<(String, QueueConfig)>, settings: &TaskRunnerBuilder) -> Self {
        let hub = Arc::new(Hub::new(settings));
        let queue_list: Vec<Arc<Queue>> = queues
            .into_iter()
            .map(|(name, config)| Arc::new(Queue::with_config(&name, &config, Arc::clone(&hub))))
            .collect();
        let queues = queue_list
            .iter()
            .map(|queue| (queue.name().into(), Arc::clone(queue)))
            .collect();
        let runtime = Fallback::new();
        let shared = Arc::new(Shared {
            queues,
            queue_list,
            registry: Registry::new(settings.retain_finished),
            hub,
            live: AtomicUsize::new(0),
            idle: Notify::new(),
            closed: AtomicBool::new(false),
            aborting: AtomicBool::new(false),
            runtime,
            cancel_grace: settings.cancel_grace,
            parked: std::sync::Mutex::new(Vec::new()),
            dedup: std::sync::Mutex::new(HashMap::new()),
            schedules: crate::schedule::Schedules::default(),
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            durable: std::sync::OnceLock::new(),
        });
        let _ = shared.hub.runner.set(Arc::downgrade(&shared));
        TaskRunner {
            _owner: Some(Arc::new(Owner(Arc::clone(&shared)))),
            shared,
        }
    }

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
    /// - [`EnqueueError::QueueFull`]: the queue has [`max_pending`](QueueConfig::max_pending)
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
        self.enqueue(task, false).map_err(Rejected::into_error)
    }

    /// Enqueues `task`; `room_taken` if the caller took its place under `max_pending`
    /// already.
    pub(super) fn enqueue<F, Fut, P, T, E>(
        &self,
        task: Task<F, P>,
        room_taken: bool,
    ) -> Result<TaskHandle<T, E>, Rejected<F, P>>
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        P: RetryPredicate<E>,
        T: Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let shared = &self.shared;
        let Some(queue) = shared.queue(&task.queue) else {
            let error = EnqueueError::UnknownQueue(task.queue.to_string());
            return Err(Rejected { error, task });
        };
        let give_back = |room_held: bool| {
            if let (true, Some(room)) = (room_held, queue.room()) {
                room.add_permits(1);
            }
        };
        if task
            .options
            .as_ref()
            .and_then(|o| o.timeout)
            .is_some_and(|t| t.is_zero())
        {
            give_back(room_taken);
            let error = EnqueueError::ZeroTimeout {
                task: task.name.clone(),
            };
            return Err(Rejected { error, task });
        }
        if let Err(error) = shared.ensure_runtime() {
            give_back(room_taken);
            return Err(Rejected { error, task });
        }
        let mut task = task;
        if !shared.cancel_grace.is_zero() {
            let options = task.options.get_or_insert_default();
            options.cancel_grace.get_or_insert(shared.cancel_grace);
        }
        if task.options.as_ref().is_some_and(|o| {
            o.timeout.is_some() || o.retry.is_some() || o.cancel_grace.is_some_and(|g| !g.is_zero())
        }) && !timers_enabled(shared.runtime.handle().as_ref())
        {
            give_back(room_taken);
            let error = EnqueueError::TimersDisabled {
                task: task.name.clone(),
            };
            return Err(Rejected { error, task });
        }
        let flow = task.options.as_ref().map(|o| &o.flow);
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

        let header = Header::new(
            id,
            task.name,
            task.call_id,
            Arc::clone(queue),
            task.priority,
            task.options,
        );
        let cell = Arc::new(TaskCell::new(header, task.handler, task.retry_if));
        // Before the task can be found (by a cancel) or started (by a worker): nothing about
        // it is reported before this.
        queue
            .hub()
            .events
            .emit(&cell.header, || EventKind::Enqueued);
        shared.registry.insert(cell.clone());
        match delay {
            Some(delay) => {
                if queue.delay(&cell.header) {
                    queue
                        .hub()
                        .events
                        .emit(&cell.header, || EventKind::Delayed {
                            until: std::time::SystemTime::now()
                                .checked_add(delay)
                                .unwrap_or_else(|| {
                                    std::time::SystemTime::now()
                                        + std::time::Duration::from_secs(100 * 365 * 86_400)
                                }),
                        });
                    shared.spawn(worker::delayed(Arc::clone(shared), cell.clone(), delay));
                }
            }
            None => {
                if let Some(job) = queue.admit(cell.clone(), false) {
                    shared.start(job);
                }
            }
        }
        crate::metrics::enqueued(queue);
        fence(Ordering::SeqCst);
        if shared.aborting.load(Ordering::SeqCst) {
            shared.cancel(&*cell, Cause::Shutdown);
        }
        Ok(TaskHandle::new(cell, Arc::clone(shared)))
    }

    /// The status of task `id`, or `None` if no such task exists or its record was evicted
    /// (see [`TaskRunnerBuilder::retain_finished`]).
    ///
    /// ```
    /// use taskrunner::{Task, TaskRunner, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let handle = runner.enqueue_task(Task::new("ping", |_ctx| async { Ok::<_, String>(()) }))?;
    /// let id = handle.id();
    /// assert_eq!(runner.get_status(id).unwrap().status, TaskStatus::Running);
    /// handle.await?;
    /// let info = runner.get_status(id).unwrap();
    /// assert_eq!((info.status, info.attempts), (TaskStatus::Completed, 1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_status(&self, id: TaskId) -> Option<TaskInfo> {
        self.shared.registry.get(id).map(|job| job.header().info())
    }

    /// The status of every task the runner knows: all unfinished ones and the most recent
    /// finished ones, ordered by id (enqueue order).
    ///
    /// ```
    /// use taskrunner::{Task, TaskRunner, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// for name in ["a", "b"] {
    ///     runner.enqueue_task(Task::new(name, |_ctx| async { Ok::<_, String>(()) }))?.await?;
    /// }
    /// let names: Vec<String> = runner.list_tasks().into_iter().map(|t| t.name).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// assert!(runner.list_tasks().iter().all(|t| t.status == TaskStatus::Completed));
    /// # Ok(())
    /// # }
    /// ```
    pub fn list_tasks(&self) -> Vec<TaskInfo> {
        let mut tasks: Vec<TaskInfo> = self
            .shared
            .registry
            .all()
            .iter()
            .map(|job| job.header().info())
            .collect();
        tasks.sort_unstable_by_key(|info| info.id);
        tasks
    }

    /// Cancels task `id` (see [`TaskHandle::cancel`]). Returns `false` if it had already
    /// finished, was already cancelled, or is unknown.
    ///
    /// ```
    /// use taskrunner::{Task, TaskContext, TaskRunner, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let handle = runner.enqueue_task(Task::new("crawl", |_: TaskContext| async {
    ///     std::future::pending::<Result<(), String>>().await
    /// }))?;
    /// let id = handle.id();
    /// assert!(runner.cancel(id));
    /// assert_eq!(runner.get_status(id).unwrap().status, TaskStatus::Cancelled);
    /// assert!(!runner.cancel(id), "already cancelled");
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel(&self, id: TaskId) -> bool {
        match self.shared.registry.get(id) {
            Some(job) => self.shared.cancel(&*job, Cause::User),
            None => false,
        }
    }

    /// Changes a queue's concurrency limit at once. Raising it starts waiting tasks now;
    /// lowering it lets running tasks finish, and starts no more until the queue is under the
    /// new limit.
    ///
    /// # Errors
    ///
    /// [`ConfigError::UnknownQueue`] for an undeclared queue, [`ConfigError::ZeroConcurrency`]
    /// for a limit of zero.
    ///
    /// ```
    /// use taskrunner::{QueueConfig, TaskRunner};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::builder().queue("llm", QueueConfig::new().concurrency(1)).build()?;
    /// runner.set_concurrency("llm", 4)?; // the provider raised our rate limit
    /// assert_eq!(runner.queue_stats("llm").unwrap().limit, 4);
    /// assert!(runner.set_concurrency("llm", 0).is_err());
    /// assert!(runner.set_concurrency("nope", 2).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_concurrency(&self, queue: &str, limit: usize) -> Result<(), ConfigError> {
        let q = self
            .shared
            .queue(queue)
            .ok_or_else(|| ConfigError::UnknownQueue(queue.to_owned()))?;
        if limit == 0 {
            return Err(ConfigError::ZeroConcurrency {
                queue: queue.to_owned(),
            });
        }
        for job in q.set_limit(limit) {
            self.shared.start(job);
        }
        Ok(())
    }

    /// A snapshot of a queue's load, or `None` for an undeclared queue.
    ///
    /// With feature `metrics`, the same numbers (and more) also go to the
    /// [`metrics`](https://docs.rs/metrics) facade as they change, labelled `queue`:
    /// counters `taskrunner_tasks_{enqueued,started,completed,failed,retried,cancelled}_total`,
    /// gauges `taskrunner_tasks_{pending,running,retrying}`, histograms
    /// `taskrunner_task_wait_seconds` (enqueue to first start) and
    /// `taskrunner_task_run_seconds` (each attempt).
    ///
    /// ```
    /// use taskrunner::{QueueConfig, Task, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::builder().queue("one", QueueConfig::new().concurrency(1)).build()?;
    /// let slow = || Task::new("slow", |_ctx| async {
    ///     tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    ///     Ok::<_, String>(())
    /// }).queue("one");
    /// let (a, b) = (runner.enqueue_task(slow())?, runner.enqueue_task(slow())?);
    /// let stats = runner.queue_stats("one").unwrap();
    /// assert_eq!((stats.running, stats.pending, stats.limit), (1, 1, 1));
    /// a.await?;
    /// b.await?;
    /// assert!(runner.queue_stats("nope").is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn queue_stats(&self, queue: &str) -> Option<QueueStats> {
        self.shared.queue(queue).map(|q| q.stats())
    }

    /// The names of the runner's queues, sorted.
    pub fn queue_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.shared.queues.keys().map(|n| n.to_string()).collect();
        names.sort_unstable();
        names
    }

    /// Resolves when no task is pending, running or waiting out a retry delay, in any queue.
    /// Resolves at once if the runner is idle already. By then every handle has resolved.
    /// Unlike [`shutdown`](Self::shutdown), the runner goes on taking tasks.
    ///
    /// ```
    /// use taskrunner::{Task, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// for i in 0..10 {
    ///     // Fire and forget: the handles are dropped, the tasks run on.
    ///     drop(runner.enqueue_task(Task::new("job", move |_ctx| async move { Ok::<_, String>(i) }))?);
    /// }
    /// runner.wait_idle().await;
    /// assert_eq!(runner.list_tasks().len(), 10);
    /// assert!(runner.list_tasks().iter().all(|t| t.status.is_terminal()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn wait_idle(&self) -> impl Future<Output = ()> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move { shared.wait_idle().await }
    }

    /// Stops every [schedule](Self::schedule), stops taking tasks
    /// ([`EnqueueError::ShuttingDown`]), and resolves once every delayed, pending, running
    /// and retrying task (schedules' runs already started included) has finished. Tasks
    /// waiting in a [paused](Self::pause_queue) queue wait for
    /// [`resume_queue`](Self::resume_queue): to bound the wait, use
    /// [`shutdown_timeout`](Self::shutdown_timeout).
    ///
    /// ```
    /// use taskrunner::{EnqueueError, Task, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let handle = runner.enqueue_task(Task::new("last", |_ctx| async { Ok::<_, String>(1) }))?;
    /// runner.shutdown().await; // the task still finishes
    /// assert_eq!(handle.await?, 1);
    /// let late = runner.enqueue_task(Task::new("late", |_ctx| async { Ok::<_, String>(2) }));
    /// assert!(matches!(late, Err(EnqueueError::ShuttingDown)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn shutdown(&self) -> impl Future<Output = ()> + Send + 'static {
        self.shared.schedules.stop_all();
        self.shared.closed.store(true, Ordering::SeqCst);
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        if let Some(durable) = self.shared.durable.get() {
            // Claimed runs that have not started go back to the store at once.
            let release = durable.shutdown(self, false);
            let idle = self.wait_idle();
            let durable = Arc::clone(durable);
            return futures::future::Either::Left(async move {
                release.await;
                idle.await;
                durable.finish_shutdown().await;
            });
        }
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        return futures::future::Either::Right(self.wait_idle());
        #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
        self.wait_idle()
    }

    /// Stops every [schedule](Self::schedule), stops taking tasks and cancels every one:
    /// pending tasks never run, running tasks' abort tokens fire and their futures are
    /// dropped, retrying tasks stop. Each handle resolves
    /// [`TaskError::Shutdown`](crate::TaskError::Shutdown). Resolves once all have ended.
    ///
    /// ```
    /// use taskrunner::{Task, TaskError, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let endless = runner.enqueue_task(Task::new("watch", |_ctx| async {
    ///     std::future::pending::<Result<(), String>>().await
    /// }))?;
    /// runner.shutdown_now().await;
    /// assert!(matches!(endless.await, Err(TaskError::Shutdown)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn shutdown_now(&self) -> impl Future<Output = ()> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        shared.schedules.stop_all();
        shared.closed.store(true, Ordering::SeqCst);
        shared.aborting.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // Durable runs claimed here, running or not, go back to the store at once.
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        let durable = shared
            .durable
            .get()
            .map(|durable| (Arc::clone(durable), durable.shutdown(self, true)));
        for job in shared.registry.all() {
            shared.cancel(&*job, Cause::Shutdown);
        }
        async move {
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            let durable = match durable {
                Some((durable, release)) => {
                    release.await;
                    Some(durable)
                }
                None => None,
            };
            shared.wait_idle().await;
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            if let Some(durable) = durable {
                durable.finish_shutdown().await;
            }
        }
    }

    /// A stream of every task's [`Event`](crate::Event)s from now on: enqueued, started,
    /// retrying, progress, and exactly one terminal event a task. A slow subscriber never
    /// slows the runner; one that falls behind is told how many events it missed.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use taskrunner::{EventKind, Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let mut events = runner.subscribe();
    /// let handle = runner.enqueue_task(Task::new("hello", |_: TaskContext| async { Ok::<_, String>(()) }))?;
    /// let kinds: Vec<EventKind> = events.by_ref().take(3).map(|e| e.unwrap().kind).collect().await;
    /// assert_eq!(kinds, [EventKind::Enqueued, EventKind::Started { attempt: 1 }, EventKind::Completed]);
    /// handle.await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe(&self) -> EventStream {
        self.shared.hub.events.subscribe()
    }

    /// Takes every waiting [`Notification`], oldest first, without blocking: what an agent
    /// loop reads before its next model call.
    ///
    /// ```
    /// use taskrunner::{Task, TaskRunner, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let tests = runner.enqueue_task(
    ///     Task::new("run_tests", |_ctx| async { Ok::<_, String>("42 passed") })
    ///         .call_id("call_7")
    ///         .notify(),
    /// )?;
    /// tests.await?;
    /// // Before the next model call: tell the model what finished.
    /// for note in runner.drain_notifications() {
    ///     assert_eq!((note.call_id.as_str(), note.status), ("call_7", TaskStatus::Completed));
    ///     assert_eq!(note.summary, "\"42 passed\"");
    /// }
    /// assert!(runner.drain_notifications().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn drain_notifications(&self) -> Vec<Notification> {
        self.shared.hub.inbox.drain()
    }

    /// Resolves once a notification is waiting (at once if one already is): lets an idle
    /// agent sleep until background work finishes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{Task, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let build = runner.enqueue_task(Task::new("build", |_ctx| async {
    ///     tokio::time::sleep(Duration::from_secs(30)).await;
    ///     Ok::<_, String>("built")
    /// }).notify())?;
    /// drop(build); // the agent does not await it; it waits for any news instead
    /// runner.notified().await;
    /// assert_eq!(runner.drain_notifications()[0].name, "build");
    /// # Ok(())
    /// # }
    /// ```
    pub fn notified(&self) -> impl Future<Output = ()> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move { shared.hub.inbox.notified().await }
    }

    /// The whole text behind a notification's summary, while the inbox keeps it (the last
    /// [`notification_capacity`](TaskRunnerBuilder::notification_capacity) notifications).
    pub fn full_result(&self, id: TaskId) -> Option<String> {
        self.shared
            .hub
            .inbox
            .full_result(id)
            .map(|text| text.to_string())
    }

    /// How many notifications were dropped, oldest first, because the inbox was full.
    pub fn notifications_dropped(&self) -> u64 {
        self.shared.hub.inbox.dropped()
    }

    /// Whether [`shutdown`](Self::shutdown) or [`shutdown_now`](Self::shutdown_now) has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }
}

impl Default for TaskRunner {
    fn default() -> Self {
        TaskRunner::new()
    }
}

impl fmt::Debug for TaskRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskRunner")
            .field("queues", &self.queue_names())
            .field("live", &self.shared.live.load(Ordering::Relaxed))
            .field("records", &self.shared.registry.len())
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}

// ===== impl TaskRunnerBuilder =====

impl TaskRunnerBuilder {
    /// Declares a queue. Queue `main` exists with concurrency 3 unless declared here.
    pub fn queue(mut self, name: impl Into<String>, config: QueueConfig) -> Self {
        self.queues.push((name.into(), config));
        self
    }

    /// How many finished tasks' records [`TaskRunner::get_status`] and
    /// [`TaskRunner::list_tasks`] keep; the ones that finished first are evicted first.
    /// Default 10,000; zero keeps none; values above 1,048,576 are clamped to it (keep a
    /// longer history in a store of your own). Unfinished tasks are always kept.
    pub fn retain_finished(mut self, n: usize) -> Self {
        self.retain_finished = n;
        self
    }

    /// How many events a slow [subscriber](TaskRunner::subscribe) may fall behind before it
    /// misses some (it is told how many, with [`Lagged`](crate::Lagged)). Default 1024.
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.event_capacity = n;
        self
    }

    /// Makes every task deposit a [`Notification`](crate::Notification) when it ends, as if
    /// enqueued with [`Task::notify`](crate::Task::notify); a task that did not ask gets the
    /// summary `completed` for an `Ok` value, since the runner cannot render its type.
    pub fn notify_all(mut self, on: bool) -> Self {
        self.notify_all = on;
        self
    }

    /// How many undrained notifications the inbox keeps (default 1000). Past it, the oldest
    /// undrained one is dropped, and counted by
    /// [`TaskRunner::notifications_dropped`]. The full texts behind the last this-many
    /// summaries stay retrievable with [`TaskRunner::full_result`].
    pub fn notification_capacity(mut self, n: usize) -> Self {
        self.notification_capacity = n;
        self
    }

    /// The most characters a notification's summary has (default 200), the `…` that marks
    /// a cut included: a longer result keeps its first `n - 1` characters and the `…`.
    pub fn summary_len(mut self, n: usize) -> Self {
        self.summary_len = n;
        self
    }

    /// The [cancel grace](crate::Task::cancel_grace) of every task that sets none: on cancel
    /// or timeout, its abort token fires and its handler has up to `grace` to finish before
    /// its future is dropped, holding its slot meanwhile. Default zero: no grace.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::TaskRunner;
    ///
    /// # fn main() -> Result<(), taskrunner::ConfigError> {
    /// let runner = TaskRunner::builder().cancel_grace(Duration::from_secs(2)).build()?;
    /// # drop(runner);
    /// # Ok(())
    /// # }
    /// ```
    pub fn cancel_grace(mut self, grace: std::time::Duration) -> Self {
        self.cancel_grace = grace;
        self
    }

    /// Builds the runner.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroConcurrency`], [`ConfigError::DuplicateQueue`] or
    /// [`ConfigError::EmptyQueueName`], naming the queue at fault.
    pub fn build(mut self) -> Result<TaskRunner, ConfigError> {
        let mut queues = std::mem::take(&mut self.queues);
        for (i, (name, config)) in queues.iter().enumerate() {
            if name.is_empty() {
                return Err(ConfigError::EmptyQueueName);
            }
            config.validate(name)?;
            if queues[..i].iter().any(|(other, _)| other == name) {
                return Err(ConfigError::DuplicateQueue(name.clone()));
            }
        }
        if !queues.iter().any(|(name, _)| name == DEFAULT_QUEUE) {
            queues.push((DEFAULT_QUEUE.into(), QueueConfig::new()));
        }
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        crate::durable::validate(&self.durable, &queues)?;
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        let durable_queues = queues.clone();
        let runner = TaskRunner::assemble(queues, &self);
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        if let Some(durable) = crate::durable::start(&self.durable, &durable_queues, &runner.shared)
        {
            let _ = runner.shared.durable.set(durable);
        }
        Ok(runner)
    }
}

mod flow_control;

/// Up to this many queues, a lookup compares names one by one: cheaper than hashing.
const SCAN_QUEUES: usize = 8;

/// FNV-1a for queue names: a handful of short strings the runner itself declared, looked
/// up on every enqueue; SipHash's flood resistance buys nothing here.
#[derive(Default)]
struct NameHasher(u64);

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for byte in bytes {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Calls the task's `on_complete` or `on_error`, once, containing a panic.
fn run_callbacks(header: &Header) {
    let Some(options) = header.options() else {
        return;
    };
    if options.on_complete.is_none() && options.on_error.is_none() {
        return;
    }
    let info = header.info();
    let call = || match (&options.on_complete, &options.on_error) {
        (Some(on_complete), _) if info.status == crate::TaskStatus::Completed => on_complete(&info),
        (_, Some(on_error)) if info.status != crate::TaskStatus::Completed => {
            on_error(&info, info.error.as_deref().unwrap_or_default())
        }
        _ => {}
    };
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).is_err() {
        tracing::warn!(task = %header.id, "a task's completion callback panicked");
    }
}

/// Takes a parked worker off the list if its park is dropped before it ends (its runtime
/// shut down). Dropped before the worker took a job a start handed it, it ends that job (see
/// [`Shared::abandon`]).
struct Unpark<'a> {
    shared: &'a Shared,
    parking: &'a Arc<Parking>,
    /// The park ended normally: off the list, and any job handed over taken.
    done: bool,
}

impl Drop for Unpark<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let handed = {
            let mut parked = lock_std(&self.shared.parked);
            if let Some(i) = parked.iter().position(|p| Arc::ptr_eq(p, self.parking)) {
                parked.swap_remove(i);
            }
            lock_std(&self.parking.job).take()
        };
        self.shared.abandon(handed);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.runtime.close();
    }
}

// ===== impl Shared =====

impl Shared {
    pub(super) fn queue(&self, name: &str) -> Option<&Arc<Queue>> {
        if self.queue_list.len() <= SCAN_QUEUES {
            self.queue_list.iter().find(|q| q.name() == name)
        } else {
            self.queues.get(name)
        }
    }

    fn ensure_runtime(&self) -> Result<(), EnqueueError> {
        if self.runtime.ensure() {
            Ok(())
        } else {
            Err(EnqueueError::NoRuntime)
        }
    }

    /// Starts `job`, which already holds a slot of its queue: hands it to a parked worker if
    /// one is waiting, else spawns a worker for it.
    pub(crate) fn start(self: &Arc<Self>, job: Arc<dyn Job>) {
        let mut parked = lock_std(&self.parked);
        match parked.pop() {
            Some(parking) => {
                // Handed over under the list's lock: a parked worker being dropped takes the
                // lock, and then finds either itself on the list or the job in its hand.
                *lock_std(&parking.job) = Some(job);
                drop(parked);
                parking.waker.wake();
            }
            None => {
                drop(parked);
                self.spawn(worker::work(Arc::clone(self), job));
            }
        }
    }

    /// Ends `job`, whose worker holds its slot but is being dropped (its runtime shut down),
    /// as [`TaskError::Shutdown`](crate::TaskError::Shutdown), then every task its queue hands
    /// that slot to next: there is no runtime left here to run them on. A loop, not a spawn
    /// per task: a spawn on a runtime that has shut down drops its future at once.
    pub(crate) fn abandon(&self, mut job: Option<Arc<dyn Job>>) {
        while let Some(current) = job {
            let header = current.header();
            header.queue.cancel(header, Cause::Shutdown);
            let (phase, cause, next) =
                header
                    .queue
                    .end_attempt(&*current, Phase::Cancelled, None, || {});
            debug_assert_eq!(phase, Phase::Cancelled);
            self.finish(&*current, cause.end());
            job = next;
        }
    }

    /// Parks a worker that ran out of work until the scheduler comes back to it once: if a
    /// start hands it a job meanwhile, returns the job; else takes it off the list.
    pub(crate) async fn park(&self, parking: &Arc<Parking>) -> Option<Arc<dyn Job>> {
        lock_std(&self.parked).push(Arc::clone(parking));
        // If this future is dropped (its runtime shut down), the worker leaves the list.
        let mut unpark = Unpark {
            shared: self,
            parking,
            done: false,
        };
        let mut yielded = false;
        let job = std::future::poll_fn(|cx| {
            if let Some(job) = lock_std(&parking.job).take() {
                return Poll::Ready(Some(job));
            }
            if !yielded {
                // Let whatever is ready run first: it may start a task.
                yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            {
                let mut parked = lock_std(&self.parked);
                if let Some(i) = parked.iter().position(|p| Arc::ptr_eq(p, parking)) {
                    parked.swap_remove(i);
                    return Poll::Ready(None);
                }
            }
            // A start took this worker off the list: its job is on the way.
            parking.waker.register(cx.waker());
            match lock_std(&parking.job).take() {
                Some(job) => Poll::Ready(Some(job)),
                None => Poll::Pending,
            }
        })
        .await;
        unpark.done = true;
        job
    }

    /// Spawns `future` on the current runtime, or the one the runner remembers. With
    /// neither, or on a runtime that has shut down, the future is dropped unpolled: the
    /// runner's futures end their tasks `Shutdown` when dropped.
    pub(crate) fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        match self.runtime.handle() {
            Some(handle) => drop(handle.spawn(future)),
            None => drop(future),
        }
    }

    /// Cancels `job` for `cause`; ends it at once unless its worker must (it is running).
    pub(crate) fn cancel(&self, job: &dyn Job, cause: Cause) -> bool {
        match job.header().queue.cancel(job.header(), cause) {
            CancelFrom::New | CancelFrom::Queued | CancelFrom::Retrying | CancelFrom::Delayed => {
                self.finish(job, cause.end());
                true
            }
            CancelFrom::Running => true,
            // Its status already says `Cancelled`: nothing more to do.
            CancelFrom::Cancelling | CancelFrom::Finished => false,
        }
    }

    /// After `job` reached its terminal phase: records it, resolves its handle, and counts it
    /// out of `live`.
    pub(crate) fn finish(&self, job: &dyn Job, end: End) {
        let header = job.header();
        self.registry.retire(header.id);
        if let Some(key) = header
            .options()
            .map(|o| &o.flow)
            .and_then(|f| f.dedup_key.as_deref())
        {
            let mut live = lock_std(&self.dedup);
            if live.get(key) == Some(&header.id) {
                live.remove(key);
            }
        }
        header.queue.hub().events.emit(header, || match &end {
            End::Completed => EventKind::Completed,
            End::Failed => EventKind::Failed {
                error: header.last_error().unwrap_or_default(),
            },
            End::TimedOut => EventKind::TimedOut,
            End::Panicked(message) => EventKind::Panicked {
                message: message.clone(),
            },
            End::Cancelled | End::Shutdown => EventKind::Cancelled,
        });
        crate::metrics::ended(&header.queue, &end);
        job.publish(end);
        run_callbacks(header);
        self.release();
    }

    /// A queue's timer fired: starts what its flow control now lets start.
    pub(crate) fn wake_queue(self: &Arc<Self>, name: &str) {
        if let Some(queue) = self.queue(name).map(Arc::clone) {
            for job in queue.wake() {
                self.start(job);
            }
        }
    }

    fn release(&self) {
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.registry.trim();
            self.idle.notify_waiters();
        }
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.live.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

// ===== hooks for schedules =====

impl TaskRunner {
    /// The state every clone shares, for the schedule module.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// A runner handle over `shared`, for the schedule module. It does not count as a clone
    /// of the user's runner: dropping it never ends the event streams.
    pub(crate) fn from_shared(shared: Arc<Shared>) -> TaskRunner {
        TaskRunner {
            shared,
            _owner: None,
        }
    }
}

impl Shared {
    /// Where events and notifications go, for the schedule module.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_registry_gives_back_memory_after_a_burst() {
        let runner = TaskRunner::builder().retain_finished(100).build().unwrap();
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        for _ in 0..20_000 {
            let gate = Arc::clone(&gate);
            let task = Task::new("burst", move |_: TaskContext| {
                let gate = Arc::clone(&gate);
                async move {
                    drop(gate.acquire().await.unwrap());
                    Ok::<_, String>(())
                }
            });
            drop(runner.enqueue_task(task).unwrap());
        }
        let registry = &runner.shared.registry;
        assert!(registry.tasks.capacity() >= 20_000);
        gate.add_permits(20_000);
        runner.wait_idle().await;
        assert_eq!(registry.len(), 100);
        assert!(
            registry.tasks.capacity() < 1_000,
            "capacity {} after going idle",
            registry.tasks.capacity()
        );
    }
}
