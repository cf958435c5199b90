//! loom models of a task group's cancel racing the slot hand-overs of its queue.
//!
//! Run with:
//! `RUSTFLAGS="--cfg taskrunner_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib loom`

use std::sync::Arc;

use loom::thread;

use super::test_job::{self, cancel, end, id_of, TestJob};
use crate::task::{GroupCore, Job, Phase};

fn id(job: &Arc<TestJob>) -> u64 {
    job.header().id.as_u64()
}

/// A group's cancel (waiting members first, then running ones) races two hand-overs of its
/// queue's slots: one by a member ending on its own, one by the worker of a member the
/// cancel stopped. A waiting member starts only if the natural end handed it the slot before
/// the cancel began, never from the slot the cancel freed; the ungrouped task behind it gets
/// a slot exactly once; the counts agree.
#[test]
fn a_group_cancel_races_the_slot_hand_overs() {
    loom::model(|| {
        let queue = test_job::queue("q", 2);
        let group = Arc::new(GroupCore::new());
        let (a, c) = (
            TestJob::in_group(&queue, &group),
            TestJob::in_group(&queue, &group),
        );
        assert!(queue.admit_new(a.clone()).is_some());
        assert!(queue.admit_new(c.clone()).is_some());
        let b = TestJob::in_group(&queue, &group);
        assert!(queue.admit_new(b.clone()).is_none());
        let x = TestJob::new(&queue, 0);
        assert!(queue.admit_new(x.clone()).is_none());

        // c ends on its own, at any moment.
        let (q, c2) = (queue.clone(), c.clone());
        let natural = thread::spawn(move || end(&q, &*c2, Phase::Completed).2.map(|j| id_of(&j)));
        // a's worker ends it once the cancel reached it.
        let (q, a2) = (queue.clone(), a.clone());
        let stopped = thread::spawn(move || {
            while a2.header().phase() != Phase::Cancelling {
                thread::yield_now();
            }
            end(&q, &*a2, Phase::Completed).2.map(|j| id_of(&j))
        });
        let members = group.close();
        for job in &members {
            let _ = cancel(&queue, job.header());
        }
        let natural = natural.join().unwrap();
        let stopped = stopped.join().unwrap();

        assert_ne!(
            stopped,
            Some(id(&b)),
            "the slot the cancel freed went to a member"
        );
        let b_started = natural == Some(id(&b));
        if b_started {
            assert_eq!(
                b.header().phase(),
                Phase::Cancelling,
                "started before: stopped now"
            );
        } else {
            assert_eq!(b.header().phase(), Phase::Cancelled);
        }
        let x_starts = [natural, stopped]
            .iter()
            .filter(|n| **n == Some(id(&x)))
            .count();
        assert_eq!(x_starts, 1, "the ungrouped task starts once");
        let stats = queue.stats();
        assert_eq!(stats.pending, 0);
        assert_eq!(stats.running, 1 + usize::from(b_started));
        assert_eq!(group.running(), usize::from(b_started));
    });
}

/// A capped group's member held at the cap while the cancel comes: it never starts, and the
/// queue's counts forget it.
#[test]
fn a_held_member_and_a_group_cancel() {
    loom::model(|| {
        let queue = test_job::queue("q", 2);
        let group = Arc::new(GroupCore::new());
        let _ = group.set_cap(1);
        let a = TestJob::in_group(&queue, &group);
        assert!(queue.admit_new(a.clone()).is_some());
        let b = TestJob::in_group(&queue, &group);
        assert!(queue.admit_new(b.clone()).is_none());
        assert_eq!(b.header().phase(), Phase::Held);

        let (q, a2) = (queue.clone(), a.clone());
        let natural = thread::spawn(move || end(&q, &*a2, Phase::Completed).2.map(|j| id_of(&j)));
        let members = group.close();
        for job in &members {
            let _ = cancel(&queue, job.header());
        }
        assert_eq!(
            natural.join().unwrap(),
            None,
            "nothing else waits in the queue"
        );
        assert_eq!(
            b.header().phase(),
            Phase::Cancelled,
            "held, then cancelled: never started"
        );
        let stats = queue.stats();
        assert_eq!((stats.pending, stats.running), (0, 0));
        assert_eq!(group.running(), 0);
        assert!(group.next_held().is_none());
    });
}
