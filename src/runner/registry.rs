//! [`TaskInfo`] records of every task by id, with bounded retention of finished ones.

use std::borrow::Borrow;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use crate::id::TaskId;
use crate::task::Job;

/// Every live task, plus the most recent finished ones up to `retain`.
pub(crate) struct Registry {
    /// The tasks, found by id: each entry is the task alone (16 bytes), its id read from
    /// its header, not stored beside it (24 bytes; ~17 bytes a task less at 1M tasks).
    tasks: DashMap<ById, (), BuildHasherDefault<IdHasher>>,
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
        self.tasks.insert(ById(job), ());
    }

    pub(crate) fn get(&self, id: TaskId) -> Option<Arc<dyn Job>> {
        self.tasks.get(&id).map(|entry| Arc::clone(&entry.key().0))
    }

    /// All records, in no particular order. The map is not locked while the caller uses them.
    pub(crate) fn all(&self) -> Vec<Arc<dyn Job>> {
        self.tasks
            .iter()
            .map(|entry| Arc::clone(&entry.key().0))
            .collect()
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
        self.tasks
            .remove(&TaskId::from_u64(evicted))
            .map(|(task, ())| task.0)
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

/// A task as a key of the registry: hashed and compared by its id, and found by a
/// [`TaskId`] (`Borrow`), so that the id need not be stored twice.
struct ById(Arc<dyn Job>);

impl ById {
    fn id(&self) -> &TaskId {
        &self.0.header().id
    }
}

impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `TaskId` hashes, which `Borrow` requires.
        self.id().hash(state);
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for ById {}

impl Borrow<TaskId> for ById {
    fn borrow(&self) -> &TaskId {
        self.id()
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::task::{Task, TaskContext};
    use crate::TaskRunner;

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
