//! Two fixed programs, many keys and much churn, that must leave no key state behind.

use std::collections::VecDeque;
use std::sync::Arc;

use super::ops::KEYS;
use crate::queue::test_job::{self, cancel, end, id_of, TestJob};
use crate::queue::{Queue, QueueConfig};
use crate::sync::lock;
use crate::task::Job;
use crate::task::Phase;

#[test]
fn a_thousand_keys_leave_nothing_behind() {
    let config = QueueConfig::new().concurrency(4).key_concurrency(1);
    let queue = Arc::new(Queue::with_config(test_job::tag("q"), &config));
    let mut running: VecDeque<Arc<dyn Job>> = VecDeque::new();
    let names: Vec<String> = (0..1000).map(|i| format!("tenant-{i}")).collect();
    for round in 0..3 {
        for name in &names {
            let job = TestJob::with_key(&queue, round, Some(name));
            if let Some(job) = queue.admit_new(job) {
                running.push_back(job);
            }
        }
    }
    while let Some(job) = running.pop_front() {
        if let (_, _, Some(next)) = end(&queue, &*job, Phase::Completed) {
            running.push_back(next);
        }
    }
    let state = lock(&queue.state);
    let flow = state.flow.as_ref().unwrap();
    assert_eq!(flow.active_keys(), 0);
    assert_eq!(flow.keyed_len(), 0);
    assert_eq!(state.tombstones, 0);
}

#[test]
fn moving_and_cancelling_churn_leaves_nothing_behind() {
    let config = QueueConfig::new().concurrency(1).key_concurrency(1);
    let queue = Arc::new(Queue::with_config(test_job::tag("q"), &config));
    let blocker: Arc<dyn Job> = TestJob::new(&queue, 0);
    assert!(queue.admit_new(Arc::clone(&blocker)).is_some());
    // A waiting task per key that stays, so the keys stay too.
    let stay: Vec<Arc<dyn Job>> = KEYS
        .iter()
        .map(|k| TestJob::with_key(&queue, 0, Some(k)) as Arc<dyn Job>)
        .collect();
    for job in &stay {
        assert!(queue.admit_new(Arc::clone(job)).is_none());
    }
    for i in 0..5_000 {
        let job: Arc<dyn Job> = TestJob::with_key(&queue, 0, Some(KEYS[i % KEYS.len()]));
        assert!(queue.admit_new(Arc::clone(&job)).is_none());
        // Each move re-ranks its key's token; each cancel re-ranks it back.
        assert!(queue.set_priority(&job, 1 + (i % 5) as i32));
        drop(cancel(&queue, job.header()));
    }
    {
        let state = lock(&queue.state);
        let flow = state.flow.as_ref().unwrap();
        let (moved, tokens) = flow.leftovers();
        assert_eq!(moved, 0);
        assert!(tokens <= 2 * KEYS.len() + 64, "{tokens} tokens for 3 keys");
        assert!(flow.keyed_len() < 200, "tombstones were compacted");
    }
    assert_eq!(queue.stats().pending, KEYS.len());
    let mut job = blocker;
    let mut order = Vec::new();
    while let (_, _, Some(next)) = end(&queue, &*job, Phase::Completed) {
        order.push(id_of(&next));
        job = next;
    }
    // Each key's token was last re-issued by the cancel of its last mover (keys k2, k0, k1
    // in that order, for i = 4997, 4998, 4999): that is the order of their turns.
    let expected: Vec<u64> = [2, 0, 1].iter().map(|&k| id_of(&stay[k])).collect();
    assert_eq!(order, expected);
    let state = lock(&queue.state);
    assert_eq!(state.flow.as_ref().unwrap().active_keys(), 0);
}
