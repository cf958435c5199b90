//! loom models of the index hand-over: a new task waiting in a plain queue is in no index
//! but its queue's order, and moves to the index under the queue lock when it leaves the
//! order (it starts, or is cancelled) or when the queue takes the flow-control path. A
//! lookup racing any of these finds it.

use std::sync::Arc;

use loom::thread;

use super::test_job::{self, cancel, end, id_of, TestJob};
use super::{find, Index, Queue};
use crate::id::TaskId;
use crate::task::{Job, Phase};

/// A queue of concurrency 1 with an index, a running task and a new task waiting.
fn setup() -> (Arc<Queue>, Arc<Index>, Arc<TestJob>, Arc<TestJob>) {
    let queue = test_job::queue("q", 1);
    let index = Arc::new(Index::default());
    queue.index_into(Arc::clone(&index));
    let running = TestJob::new(&queue, 0);
    assert!(queue.admit_new(running.clone()).is_some());
    let waiting = TestJob::new(&queue, 0);
    assert!(queue.admit_new(waiting.clone()).is_none());
    (queue, index, running, waiting)
}

fn lookup(index: &Index, queue: &Arc<Queue>, id: TaskId) -> Option<u64> {
    find(index, std::slice::from_ref(queue), id).map(|job| id_of(&job))
}

#[test]
fn a_lookup_racing_the_start_of_a_waiting_task_finds_it() {
    loom::model(|| {
        let (queue, index, running, waiting) = setup();
        let id = waiting.header().id;
        assert!(index.get(id).is_none(), "a new waiting task is not indexed");

        let (q, r) = (queue.clone(), running.clone());
        let finisher = thread::spawn(move || end(&q, &*r, Phase::Completed).2.map(|j| id_of(&j)));
        assert_eq!(lookup(&index, &queue, id), Some(id.as_u64()));
        assert_eq!(finisher.join().unwrap(), Some(id.as_u64()));
        // Once started it is indexed, and no longer in the order.
        assert!(index.get(id).is_some());
        assert!(queue.find_waiting(id).is_none());
    });
}

#[test]
fn a_lookup_racing_the_cancel_of_a_waiting_task_finds_it() {
    loom::model(|| {
        let (queue, index, _running, waiting) = setup();
        let id = waiting.header().id;

        let (q, w) = (queue.clone(), waiting.clone());
        let canceller = thread::spawn(move || cancel(&q, w.header()).from);
        assert_eq!(lookup(&index, &queue, id), Some(id.as_u64()));
        canceller.join().unwrap();
        // Cancelled, it is indexed: its record outlives its entry in the order.
        assert!(index.get(id).is_some());
        assert_eq!(waiting.header().phase(), Phase::Cancelled);
    });
}

#[test]
fn a_lookup_racing_the_first_pause_finds_the_waiting_task() {
    loom::model(|| {
        let (queue, index, _running, waiting) = setup();
        let id = waiting.header().id;

        let q = queue.clone();
        let pauser = thread::spawn(move || q.pause());
        assert_eq!(lookup(&index, &queue, id), Some(id.as_u64()));
        pauser.join().unwrap();
        // The flow-control path searches no order: everything waiting was indexed.
        assert!(index.get(id).is_some());
        assert!(queue.find_waiting(id).is_none());
    });
}
