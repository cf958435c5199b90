//! loom models of the concurrency core: slot hand-off, cancel, resize and retry admission,
//! each raced against another, under every interleaving loom explores.
//!
//! Run with:
//! `RUSTFLAGS="--cfg taskrunner_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib loom`

use std::sync::Arc;

use loom::thread;

use super::test_job::{self, cancel, end, id_of, TestJob};
use super::{Queue, QueueConfig};
use crate::task::Phase;
use crate::task::{CancelFrom, Job};

fn started(queue: &Arc<Queue>) -> Arc<TestJob> {
    let job = TestJob::new(queue, 0);
    assert!(queue.admit_new(job.clone()).is_some());
    job
}

fn queued(queue: &Arc<Queue>) -> Arc<TestJob> {
    let job = TestJob::new(queue, 0);
    assert!(queue.admit_new(job.clone()).is_none());
    job
}

fn id(job: &Arc<TestJob>) -> u64 {
    job.header().id.as_u64()
}

/// The queue's counts agree with its tasks' phases, and no start exceeded the limit.
fn assert_consistent(queue: &Queue, jobs: &[&Arc<TestJob>]) {
    let stats = queue.stats();
    let count = |phases: &[Phase]| {
        jobs.iter()
            .filter(|j| phases.contains(&j.header().phase()))
            .count()
    };
    assert_eq!(stats.running, count(&[Phase::Running, Phase::Cancelling]));
    assert_eq!(stats.pending, count(&[Phase::Queued]));
    assert_eq!(stats.retrying, count(&[Phase::Retrying]));
}

#[test]
fn a_freed_slot_and_a_new_task_meet_once() {
    loom::model(|| {
        let queue = test_job::queue("q", 1);
        let a = started(&queue);
        let b = TestJob::new(&queue, 0);

        let (q, a2) = (queue.clone(), a.clone());
        let finisher = thread::spawn(move || end(&q, &*a2, Phase::Completed).2.map(|j| id_of(&j)));
        let b_started_by_admit = queue.admit_new(b.clone()).is_some();
        let b_started_by_handoff = finisher.join().unwrap() == Some(id(&b));

        assert!(
            b_started_by_admit ^ b_started_by_handoff,
            "b starts exactly once"
        );
        assert_eq!(queue.stats().running, 1);
        assert_consistent(&queue, &[&a, &b]);
    });
}

#[test]
fn cancel_races_with_start() {
    loom::model(|| {
        let queue = test_job::queue("q", 1);
        let a = started(&queue);
        let b = queued(&queue);

        let (q, a2) = (queue.clone(), a.clone());
        let finisher = thread::spawn(move || end(&q, &*a2, Phase::Completed).2.map(|j| id_of(&j)));
        let from = cancel(&queue, b.header()).from;
        let next = finisher.join().unwrap();

        match from {
            // Cancelled while waiting: it never starts, and the slot was given up.
            CancelFrom::Queued => {
                assert_eq!(next, None);
                assert_eq!(b.header().phase(), Phase::Cancelled);
            }
            // Started first: now being cancelled, holding the slot until its worker ends it.
            CancelFrom::Running => {
                assert_eq!(next, Some(id(&b)));
                assert_eq!(b.header().phase(), Phase::Cancelling);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(queue.stats().pending, 0);
        assert_consistent(&queue, &[&a, &b]);
    });
}

#[test]
fn raising_the_limit_races_with_completion() {
    loom::model(|| {
        let queue = test_job::queue("q", 1);
        let a = started(&queue);
        let b = queued(&queue);
        let c = queued(&queue);

        let (q, a2) = (queue.clone(), a.clone());
        let finisher = thread::spawn(move || end(&q, &*a2, Phase::Completed).2.map(|j| id_of(&j)));
        let mut starts: Vec<u64> = queue.set_limit(2).iter().map(id_of).collect();
        starts.extend(finisher.join().unwrap());
        starts.sort_unstable();

        assert_eq!(
            starts,
            [id(&b), id(&c)],
            "each waiting task starts exactly once"
        );
        let stats = queue.stats();
        assert_eq!((stats.running, stats.pending, stats.limit), (2, 0, 2));
        assert_consistent(&queue, &[&a, &b, &c]);
    });
}

#[test]
fn lowering_the_limit_races_with_completion() {
    loom::model(|| {
        let queue = test_job::queue("q", 2);
        let a = started(&queue);
        let b = started(&queue);
        let c = queued(&queue);

        let (q, a2) = (queue.clone(), a.clone());
        let finisher = thread::spawn(move || end(&q, &*a2, Phase::Completed).2.map(|j| id_of(&j)));
        assert!(queue.set_limit(1).is_empty());
        let next = finisher.join().unwrap();

        // Either the slot passed to c before the limit dropped, or it was given up.
        let running = queue.stats().running;
        match next {
            Some(n) => assert_eq!((n, running), (id(&c), 2)),
            None => assert_eq!(running, 1),
        }
        assert_consistent(&queue, &[&a, &b, &c]);

        // Whatever happened, once b ends the queue is at its new limit, and c has started
        // exactly once: from a's slot, or from b's.
        let after = end(&queue, &*b, Phase::Completed).2;
        let c_starts = [next, after.map(|j| id_of(&j))]
            .iter()
            .filter(|n| **n == Some(id(&c)))
            .count();
        assert_eq!(c_starts, 1);
        assert_eq!(queue.stats().running, 1);
        assert_consistent(&queue, &[&a, &b, &c]);
    });
}

#[test]
fn cancel_races_with_the_end_of_a_backoff() {
    loom::model(|| {
        let queue = test_job::queue("q", 1);
        let a = started(&queue);
        let (phase, _, _) = end(&queue, &*a, Phase::Retrying);
        assert_eq!(phase, Phase::Retrying);

        let (q, a2) = (queue.clone(), a.clone());
        let timer = thread::spawn(move || q.admit_retry(a2).is_some());
        let from = cancel(&queue, a.header()).from;
        let restarted = timer.join().unwrap();

        match from {
            CancelFrom::Retrying => {
                assert!(!restarted, "a cancelled backoff never re-enters");
                assert_eq!(a.header().phase(), Phase::Cancelled);
            }
            CancelFrom::Running => {
                assert!(restarted);
                assert_eq!(a.header().phase(), Phase::Cancelling);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(queue.stats().retrying, 0);
        assert_consistent(&queue, &[&a]);
    });
}

#[test]
fn cancel_races_with_completion() {
    loom::model(|| {
        let queue = test_job::queue("q", 1);
        let a = started(&queue);

        let (q, a2) = (queue.clone(), a.clone());
        let finisher = thread::spawn(move || end(&q, &*a2, Phase::Completed).0);
        let from = cancel(&queue, a.header()).from;
        let phase = finisher.join().unwrap();

        // One terminal phase, agreed by both sides.
        match from {
            CancelFrom::Running => assert_eq!(phase, Phase::Cancelled),
            CancelFrom::Finished => assert_eq!(phase, Phase::Completed),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(a.header().phase(), phase);
        assert_eq!(queue.stats().running, 0);
    });
}

#[test]
fn a_key_slot_freed_while_a_cancel_races() {
    loom::model(|| {
        let config = QueueConfig::new().concurrency(2).key_concurrency(1);
        let queue = Arc::new(Queue::with_config(test_job::tag("q"), &config));
        let keyed = |queue: &Arc<Queue>| TestJob::with_key(queue, 0, Some("k"));
        let a = keyed(&queue);
        assert!(queue.admit_new(a.clone()).is_some());
        let (b, d) = (keyed(&queue), keyed(&queue));
        assert!(queue.admit_new(b.clone()).is_none(), "key k is busy");
        assert!(queue.admit_new(d.clone()).is_none());

        let (q, a2) = (queue.clone(), a.clone());
        let finisher = thread::spawn(move || end(&q, &*a2, Phase::Completed).2.map(|j| id_of(&j)));
        let from = cancel(&queue, b.header()).from;
        let next = finisher.join().unwrap();

        match from {
            // b was cancelled while waiting: the freed key slot went to d.
            CancelFrom::Queued => assert_eq!(next, Some(id(&d))),
            // b took the key slot first; its cancel stops it running, d still waits.
            CancelFrom::Running => {
                assert_eq!(next, Some(id(&b)));
                assert_eq!(d.header().phase(), Phase::Queued);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(queue.stats().running, 1, "one slot for key k, never two");
        assert_consistent(&queue, &[&a, &b, &d]);
    });
}
