//! [`TaskInfo`] records of every task by id, with bounded retention of finished ones.
//!
//! A new task waiting in a plain queue is found through its queue, not indexed twice (see
//! [`Index`]): a lookup reads the index, then the queues, then the index again, since a task
//! moves from a queue's order to the index under the queue lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::id::TaskId;
use crate::queue::{find, Index, Queue};
use crate::task::Job;

/// Every live task, plus the most recent finished ones up to `retain`.
pub(crate) struct Registry {
    /// The tasks found by id, but for the new tasks waiting in a plain queue's order.
    index: Arc<Index>,
    /// The queues, whose orders hold the rest.
    queues: Vec<Arc<Queue>>,
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
    /// The registry of a runner with `queues`, which index what leaves their orders here.
    pub(crate) fn new(retain: usize, queues: &[Arc<Queue>]) -> Registry {
        let index = Arc::new(Index::default());
        for queue in queues {
            queue.index_into(Arc::clone(&index));
        }
        Registry {
            index,
            queues: queues.to_vec(),
            finished: (0..retain.min(MAX_RETAIN))
                .map(|_| AtomicU64::new(EMPTY))
                .collect(),
            count: AtomicU64::new(0),
            checked_at: AtomicU64::new(0),
        }
    }

    /// Indexes a task its queue will not (a delayed one: it is in no order yet).
    pub(crate) fn insert(&self, job: Arc<dyn Job>) {
        self.index.insert(job);
    }

    pub(crate) fn get(&self, id: TaskId) -> Option<Arc<dyn Job>> {
        find(&self.index, &self.queues, id)
    }

    /// All records, in no particular order, each once. Nothing is locked while the caller
    /// uses them.
    pub(crate) fn all(&self) -> Vec<Arc<dyn Job>> {
        // The queues first, as in `get`; a task seen in both is listed once.
        let mut all: Vec<Arc<dyn Job>> = self
            .queues
            .iter()
            .flat_map(|queue| queue.unindexed())
            .collect();
        let waiting = all.len();
        all.extend(self.index.all());
        if waiting > 0 {
            all.sort_unstable_by_key(|job| job.header().id);
            all.dedup_by_key(|job| job.header().id);
        }
        all
    }

    /// Records that `id` finished, evicting the record that finished `retain` tasks ago
    /// (returned).
    pub(crate) fn retire(&self, id: TaskId) -> Option<Arc<dyn Job>> {
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        let evicted = if self.finished.is_empty() {
            id.as_u64()
        } else {
            let slot = (n % self.finished.len() as u64) as usize;
            self.finished[slot].swap(id.as_u64(), Ordering::AcqRel)
        };
        if evicted == EMPTY {
            return None;
        }
        self.index.remove(TaskId::from_u64(evicted))
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
        let len = self.index.len();
        if self.index.capacity() > 2 * len + TRIM_EVERY as usize {
            self.index.shrink_to_fit();
        }
    }

    /// The records in the index (not the new tasks waiting in plain queues).
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::task::{Task, TaskContext};
    use crate::{QueueConfig, TaskRunner, TaskStatus};

    /// A burst that runs all at once: running tasks are indexed (waiting ones are found
    /// through their queue).
    #[tokio::test(start_paused = true)]
    async fn the_registry_gives_back_memory_after_a_burst() {
        let runner = TaskRunner::builder()
            .retain_finished(100)
            .queue("burst", QueueConfig::new().concurrency(20_000))
            .build()
            .unwrap();
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        for _ in 0..20_000 {
            let gate = Arc::clone(&gate);
            let task = Task::new("burst", move |_: TaskContext| {
                let gate = Arc::clone(&gate);
                async move {
                    drop(gate.acquire().await.unwrap());
                    Ok::<_, String>(())
                }
            })
            .queue("burst");
            drop(runner.enqueue_task(task).unwrap());
        }
        let registry = &runner.shared.registry;
        assert!(registry.index.capacity() >= 20_000);
        gate.add_permits(20_000);
        runner.wait_idle().await;
        assert_eq!(registry.len(), 100);
        assert!(
            registry.index.capacity() < 1_000,
            "capacity {} after going idle",
            registry.index.capacity()
        );
    }

    /// A runner with queue "one" of concurrency 1 held by a task waiting on `gate`.
    fn held_runner(retain: usize, gate: &Arc<tokio::sync::Semaphore>) -> TaskRunner {
        let runner = TaskRunner::builder()
            .retain_finished(retain)
            .queue("one", QueueConfig::new().concurrency(1))
            .build()
            .unwrap();
        let gate = Arc::clone(gate);
        let blocker = Task::new("blocker", move |_: TaskContext| {
            let gate = Arc::clone(&gate);
            async move {
                drop(gate.acquire().await.unwrap());
                Ok::<_, String>(())
            }
        });
        drop(runner.enqueue_task(blocker.queue("one")).unwrap());
        runner
    }

    fn noop() -> Task<impl Fn(TaskContext) -> std::future::Ready<Result<(), String>>> {
        Task::new("noop", |_: TaskContext| std::future::ready(Ok(()))).queue("one")
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_tasks_are_found_through_their_queue() {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let runner = held_runner(1_000, &gate);
        let handles: Vec<_> = (0..200)
            .map(|_| runner.enqueue_task(noop()).unwrap())
            .collect();
        let registry = &runner.shared.registry;
        assert_eq!(registry.len(), 1, "only the running task is indexed");
        for handle in &handles {
            assert_eq!(
                runner.get_status(handle.id()).unwrap().status,
                TaskStatus::Pending
            );
        }
        assert_eq!(runner.list_tasks().len(), 201);
        // Cancelled by id (enough to compact the order): their records stay.
        for handle in &handles[..100] {
            assert!(runner.cancel(handle.id()));
        }
        for handle in &handles[..100] {
            let info = runner.get_status(handle.id()).unwrap();
            assert_eq!(info.status, TaskStatus::Cancelled);
        }
        assert_eq!(runner.list_tasks().len(), 201);
        // A moved priority takes the queue onto the flow path: everything gets indexed.
        assert!(runner.set_priority(handles[150].id(), 5));
        assert_eq!(registry.len(), 201);
        for handle in &handles[100..] {
            assert_eq!(
                runner.get_status(handle.id()).unwrap().status,
                TaskStatus::Pending
            );
        }
        gate.add_permits(1);
        for handle in handles {
            drop(handle.await);
        }
        runner.wait_idle().await;
        assert_eq!(registry.len(), 201);
        let tasks = runner.list_tasks();
        assert_eq!(tasks.len(), 201);
        assert!(tasks.iter().all(|t| t.status.is_terminal()));
    }

    /// Tasks cancelled while waiting unindexed are retired like the others: the map keeps
    /// `retain` records, no more.
    #[tokio::test(start_paused = true)]
    async fn cancelled_waiting_tasks_are_retired() {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let runner = held_runner(10, &gate);
        let handles: Vec<_> = (0..300)
            .map(|_| runner.enqueue_task(noop()).unwrap())
            .collect();
        for handle in handles.iter().step_by(2) {
            assert!(runner.cancel(handle.id()));
        }
        gate.add_permits(1);
        for handle in handles {
            drop(handle.await);
        }
        runner.wait_idle().await;
        assert_eq!(runner.shared.registry.len(), 10);
        assert_eq!(runner.list_tasks().len(), 10);
    }
}
