//! [`TaskInfo`] records of every task by id, with bounded retention of finished ones.

use std::collections::VecDeque;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use dashmap::DashMap;

use crate::job::Job;
use crate::sync::lock_std;
use crate::{TaskId, TaskStatus};

/// A snapshot of one task's status, from [`TaskRunner::get_status`](crate::TaskRunner::get_status),
/// [`TaskRunner::list_tasks`](crate::TaskRunner::list_tasks) or
/// [`TaskHandle::info`](crate::TaskHandle::info).
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// Every live task, plus the most recent finished ones up to `retain`.
pub(crate) struct Registry {
    pub(crate) tasks: DashMap<TaskId, Arc<dyn Job>, BuildHasherDefault<IdHasher>>,
    finished: Mutex<Finished>,
    retain: usize,
}

struct Finished {
    /// Finished ids, oldest first.
    ids: VecDeque<TaskId>,
    /// Tasks finished since the map was last trimmed.
    since_trim: usize,
}

/// How many tasks must finish between two checks of the map's size in [`Registry::trim`].
const TRIM_EVERY: usize = 4096;

impl Registry {
    pub(crate) fn new(retain: usize) -> Registry {
        Registry {
            tasks: DashMap::default(),
            finished: Mutex::new(Finished {
                ids: VecDeque::new(),
                since_trim: 0,
            }),
            retain,
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

    /// Records that `id` finished, evicting the oldest finished records past the cap.
    pub(crate) fn retire(&self, id: TaskId) {
        let evicted = {
            let mut finished = lock_std(&self.finished);
            finished.since_trim += 1;
            finished.ids.push_back(id);
            // Past the cap by one at most, unless `retain` is zero.
            if finished.ids.len() > self.retain {
                finished.ids.pop_front()
            } else {
                None
            }
        };
        if let Some(old) = evicted {
            self.tasks.remove(&old);
        }
    }

    /// Gives back the map's memory after a burst. Called when the runner goes idle; checks
    /// the map at most once per [`TRIM_EVERY`] finished tasks, so it costs nothing when
    /// tasks come one at a time.
    pub(crate) fn trim(&self) {
        {
            let mut finished = lock_std(&self.finished);
            if finished.since_trim < TRIM_EVERY {
                return;
            }
            finished.since_trim = 0;
        }
        if self.tasks.capacity() > 2 * self.tasks.len() + TRIM_EVERY {
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
