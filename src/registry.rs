//! [`TaskInfo`] records of every task by id, with bounded retention of finished ones.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use dashmap::DashMap;

use crate::job::Job;
use crate::{Progress, TaskId, TaskStatus};

/// A snapshot of one task's status, from [`TaskRunner::get_status`](crate::TaskRunner::get_status),
/// [`TaskRunner::list_tasks`](crate::TaskRunner::list_tasks) or
/// [`TaskHandle::info`](crate::TaskHandle::info).
///
/// ```
/// use std::time::Duration;
/// use taskrunner::{RetryPolicy, Task, TaskRunner, TaskStatus};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let handle = runner.enqueue_task(
///     Task::new("fetch", |ctx| async move {
///         if ctx.attempt() == 1 { Err("HTTP 503".to_owned()) } else { Ok(()) }
///     })
///     .call_id("call_9")
///     .retry(RetryPolicy::fixed(Duration::from_millis(100))),
/// )?;
/// let id = handle.id();
/// handle.await?;
/// let info = runner.get_status(id).unwrap();
/// assert_eq!((info.name.as_str(), info.call_id.as_str(), info.queue.as_str()), ("fetch", "call_9", "main"));
/// assert_eq!((info.status, info.attempts), (TaskStatus::Completed, 2));
/// assert!(info.started_at.unwrap() <= info.finished_at.unwrap());
/// assert_eq!(info.error, None, "a success clears the last attempt's error");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// The model's call id (given or generated).
    pub call_id: String,
    /// The task's name.
    pub name: String,
    /// The queue it runs in.
    pub queue: String,
    /// Its priority.
    pub priority: i32,
    /// Where it is in its life.
    pub status: TaskStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// When it was enqueued.
    pub created_at: SystemTime,
    /// When its first attempt started.
    pub started_at: Option<SystemTime>,
    /// When it reached its terminal status.
    pub finished_at: Option<SystemTime>,
    /// Why its last attempt failed (kept while it retries), or why it was cancelled.
    pub error: Option<String>,
    /// The last progress its handler reported, if any.
    pub progress: Option<Progress>,
    /// Why it waits, while it is [`Delayed`](TaskStatus::Delayed) or
    /// [`Pending`](TaskStatus::Pending): its start time, a paused queue, a rate limit, its
    /// concurrency key, or no free slot. `None` otherwise.
    pub waiting_for: Option<crate::WaitReason>,
    /// The [schedule](crate::Schedule) whose run this task is, if any.
    pub schedule: Option<String>,
}

/// Every live task, plus the most recent finished ones up to `retain`.
pub(crate) struct Registry {
    pub(crate) tasks: DashMap<TaskId, Arc<dyn Job>, BuildHasherDefault<IdHasher>>,
    /// The last `retain` finished ids, as a ring: the n-th task to finish goes in slot
    /// `n % retain`, evicting the id that finished `retain` tasks before it. Lock-free, and
    /// oldest-first by finish order.
    finished: Box<[AtomicU64]>,
    /// How many tasks have finished.
    count: AtomicU64,
    /// `count` when the map was last checked for trimming.
    checked_at: AtomicU64,
}

/// How many tasks must finish between two checks of the map's size in [`Registry::trim`].
const TRIM_EVERY: u64 = 4096;

/// The most finished records a runner keeps; a larger `retain_finished` is clamped to it.
pub(crate) const MAX_RETAIN: usize = 1 << 20;

/// Marks an empty ring slot (task ids start at 1).
const EMPTY: u64 = 0;

impl Registry {
    pub(crate) fn new(retain: usize) -> Registry {
        Registry {
            tasks: DashMap::default(),
            finished: (0..retain.min(MAX_RETAIN))
                .map(|_| AtomicU64::new(EMPTY))
                .collect(),
            count: AtomicU64::new(0),
            checked_at: AtomicU64::new(0),
        }
    }

    pub(crate) fn insert(&self, job: Arc<dyn Job>) {
        self.tasks.insert(job.header().id, job);
    }

    pub(crate) fn get(&self, id: TaskId) -> Option<Arc<dyn Job>> {
        self.tasks.get(&id).map(|entry| Arc::clone(entry.value()))
    }

    /// All records, in no particular order. The map is not locked while the caller uses them.
    pub(crate) fn all(&self) -> Vec<Arc<dyn Job>> {
        self.tasks
            .iter()
            .map(|entry| Arc::clone(entry.value()))
            .collect()
    }

    /// Records that `id` finished, evicting the record that finished `retain` tasks ago.
    pub(crate) fn retire(&self, id: TaskId) {
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        let evicted = if self.finished.is_empty() {
            id.as_u64()
        } else {
            let slot = (n % self.finished.len() as u64) as usize;
            self.finished[slot].swap(id.as_u64(), Ordering::AcqRel)
        };
        if evicted != EMPTY {
            self.tasks.remove(&TaskId::from_u64(evicted));
        }
    }

    /// Gives back the map's memory after a burst. Called when the runner goes idle; checks
    /// the map at most once per [`TRIM_EVERY`] finished tasks, so it costs nothing when
    /// tasks come one at a time.
    pub(crate) fn trim(&self) {
        let count = self.count.load(Ordering::Relaxed);
        let checked_at = self.checked_at.load(Ordering::Relaxed);
        if count - checked_at < TRIM_EVERY
            || self
                .checked_at
                .compare_exchange(checked_at, count, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let len = self.tasks.len();
        if self.tasks.capacity() > 2 * len + TRIM_EVERY as usize {
            self.tasks.shrink_to_fit();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }
}

/// Hashes a [`TaskId`] with one multiplication. Ids are sequential numbers the runner
/// hands out, not input an attacker chooses, so SipHash's flood resistance buys nothing.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
