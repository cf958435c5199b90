//! [`Index`]: the tasks a runner can find by id that its queues' orders do not hold.
//!
//! A task waiting in a plain queue's order, new (not back from a retry, a delay or its
//! group), is found through that order ([`Queue::find_waiting`](super::Queue::find_waiting)):
//! the index would be a second structure a queued task pays for (about 35 bytes a task at
//! 1M queued). Every other task is here: the queue inserts one when it leaves the order (it
//! starts, or is cancelled), under the queue lock, so that a lookup which reads the queue
//! before the index cannot miss it.

use std::borrow::Borrow;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use dashmap::DashMap;

use crate::id::TaskId;
use crate::task::Job;

/// Tasks by id: each entry is the task alone (16 bytes), its id read from its header, not
/// stored beside it (24 bytes; ~17 bytes a task less at 1M tasks).
#[derive(Default)]
pub(crate) struct Index {
    tasks: DashMap<ById, (), BuildHasherDefault<IdHasher>>,
}

impl Index {
    pub(crate) fn insert(&self, job: Arc<dyn Job>) {
        self.tasks.insert(ById(job), ());
    }

    pub(crate) fn get(&self, id: TaskId) -> Option<Arc<dyn Job>> {
        self.tasks.get(&id).map(|entry| Arc::clone(&entry.key().0))
    }

    pub(crate) fn remove(&self, id: TaskId) -> Option<Arc<dyn Job>> {
        self.tasks.remove(&id).map(|(task, ())| task.0)
    }

    /// All tasks, in no particular order. The map is not locked while the caller uses them.
    pub(crate) fn all(&self) -> Vec<Arc<dyn Job>> {
        self.tasks
            .iter()
            .map(|entry| Arc::clone(&entry.key().0))
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.tasks.capacity()
    }

    pub(crate) fn shrink_to_fit(&self) {
        self.tasks.shrink_to_fit();
    }
}

/// A task as a key of the index: hashed and compared by its id, and found by a
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
