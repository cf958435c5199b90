//! [`TaskRunnerBuilder`]: a runner's queues and settings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, OnceLock, Weak};

use tokio::sync::Notify;

use super::calls::CallIndex;
use super::extension::{BuildHook, Extensions};
use super::park::Lot;
use super::registry::Registry;
use super::{Owner, Shared, TaskRunner};
use crate::config::{
    QueueConfig, DEFAULT_EVENT_CAPACITY, DEFAULT_NOTIFICATION_CAPACITY, DEFAULT_QUEUE,
    DEFAULT_RETAIN_FINISHED, DEFAULT_SUMMARY_LEN,
};
use crate::error::ConfigError;
use crate::observe::Observers;
use crate::queue::{Host, Queue};
use crate::runtime::Fallback;
use crate::task::QueueTag;

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
    pub(super) queues: Vec<(String, QueueConfig)>,
    pub(super) retain_finished: usize,
    pub(super) event_capacity: usize,
    pub(super) notification_capacity: usize,
    pub(super) summary_len: usize,
    pub(super) notify_all: bool,
    /// The settings of the layers built on the runner (the durable store and the
    /// definitions this process runs from it), one of each type.
    layers: Vec<Arc<dyn BuildHook>>,
    pub(super) cancel_grace: std::time::Duration,
}

impl TaskRunner {
    /// A runner with `queues`, set up as `settings` say.
    pub(super) fn assemble(
        queues: Vec<(String, QueueConfig)>,
        settings: &TaskRunnerBuilder,
    ) -> Self {
        let observers = Arc::new(Observers::new(
            settings.event_capacity,
            settings.notification_capacity,
            settings.summary_len,
            settings.notify_all,
        ));
        let queue_list: Vec<Arc<Queue>> = queues
            .into_iter()
            .enumerate()
            .map(|(index, (name, config))| {
                let tag = QueueTag::new(index, &name, Arc::clone(&observers));
                Arc::new(Queue::with_config(tag, &config))
            })
            .collect();
        let queues = queue_list
            .iter()
            .map(|queue| (queue.name().into(), Arc::clone(queue)))
            .collect();
        let runtime = Fallback::new();
        let registry = Registry::new(settings.retain_finished, &queue_list);
        let shared = Arc::new(Shared {
            queues,
            queue_list,
            registry,
            calls: CallIndex::default(),
            observers,
            live: AtomicUsize::new(0),
            idle: Notify::new(),
            ended: Notify::new(),
            cancel_waiters: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            aborting: AtomicBool::new(false),
            runtime,
            cancel_grace: settings.cancel_grace,
            parked: Lot::default(),
            blocks: std::sync::Mutex::default(),
            dedup: std::sync::Mutex::new(HashMap::new()),
            this: OnceLock::new(),
            extensions: Extensions::new(),
        });
        let _ = shared.this.set(Arc::downgrade(&shared));
        let host: Weak<dyn Host> = Arc::downgrade(&shared) as Weak<dyn Host>;
        for queue in &shared.queue_list {
            queue.connect(Weak::clone(&host));
        }
        TaskRunner {
            _owner: Some(Arc::new(Owner(Arc::clone(&shared)))),
            shared,
        }
    }
}

impl TaskRunnerBuilder {
    /// Every setting at its default.
    pub(super) fn new() -> TaskRunnerBuilder {
        TaskRunnerBuilder {
            queues: Vec::new(),
            retain_finished: DEFAULT_RETAIN_FINISHED,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            notification_capacity: DEFAULT_NOTIFICATION_CAPACITY,
            summary_len: DEFAULT_SUMMARY_LEN,
            notify_all: false,
            layers: Vec::new(),
            cancel_grace: std::time::Duration::ZERO,
        }
    }

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
        // A limit the store enforces, checked whether or not this builder has a store.
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        if let Some((name, _)) = queues
            .iter()
            .find(|(_, config)| config.global_concurrency == Some(0))
        {
            return Err(ConfigError::ZeroConcurrency {
                queue: name.clone(),
            });
        }
        for layer in &self.layers {
            layer.validate(&queues)?;
        }
        let layer_queues = if self.layers.is_empty() {
            Vec::new()
        } else {
            queues.clone()
        };
        let runner = TaskRunner::assemble(queues, &self);
        for layer in &self.layers {
            layer.start(&layer_queues, &runner.shared);
        }
        Ok(runner)
    }

    /// Edits the settings of type `T` that a layer built on the runner keeps on this builder,
    /// starting from `T::default()` if it has none yet. Copy on write: a clone of this
    /// builder keeps its own.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn with_layer<T>(mut self, edit: impl FnOnce(&mut T)) -> Self
    where
        T: BuildHook + Clone + Default,
    {
        let at = self.layers.iter().position(|layer| {
            let layer: &dyn std::any::Any = &**layer;
            layer.is::<T>()
        });
        let mut settings: Arc<T> = at
            .map(|i| self.layers.remove(i))
            .and_then(|layer| {
                (layer as Arc<dyn std::any::Any + Send + Sync>)
                    .downcast()
                    .ok()
            })
            .unwrap_or_default();
        edit(Arc::make_mut(&mut settings));
        self.layers.insert(
            at.unwrap_or(self.layers.len()),
            settings as Arc<dyn BuildHook>,
        );
        self
    }
}
