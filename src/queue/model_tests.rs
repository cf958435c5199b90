//! The queue's slot accounting and priority order, checked step by step against a reference
//! model on random programs. The queue is synchronous, so the model predicts every start
//! exactly: which task takes a freed slot, and which phase each task is in.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;

use super::test_job::{self, cancel, end, id_of, TestJob};
use super::Queue;
use crate::task::Phase;
use crate::task::{CancelFrom, Job};

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        priority: i32,
    },
    /// End the attempt of the `pick`-th running task, to retry or to complete.
    Finish {
        pick: usize,
        retry: bool,
    },
    Cancel {
        pick: usize,
    },
    /// The backoff of the `pick`-th retrying task ends.
    RetryReady {
        pick: usize,
    },
    /// A backoff timer firing for a task that was cancelled meanwhile.
    StaleRetry {
        pick: usize,
    },
    SetLimit {
        limit: usize,
    },
    /// Enqueue with a start delay: `Delayed`, in no order, until `DelayReady`.
    EnqueueDelayed {
        priority: i32,
    },
    /// The start delay of the `pick`-th delayed task ends.
    DelayReady {
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (-3..=3i32).prop_map(|priority| Op::Enqueue { priority }),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(pick, retry)| Op::Finish { pick, retry }),
        2 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        2 => any::<usize>().prop_map(|pick| Op::RetryReady { pick }),
        1 => any::<usize>().prop_map(|pick| Op::StaleRetry { pick }),
        1 => (1..=4usize).prop_map(|limit| Op::SetLimit { limit }),
        1 => (-3..=3i32).prop_map(|priority| Op::EnqueueDelayed { priority }),
        1 => any::<usize>().prop_map(|pick| Op::DelayReady { pick }),
    ]
}

/// What the queue should be doing.
#[derive(Default)]
struct Model {
    limit: usize,
    /// Slot holders, in start order.
    running: Vec<u64>,
    /// (priority, id) of waiting tasks.
    pending: Vec<(i32, u64)>,
    retrying: Vec<u64>,
    delayed: Vec<u64>,
    phases: HashMap<u64, Phase>,
    priorities: HashMap<u64, i32>,
}

impl Model {
    /// Takes the best waiting task: highest priority, then lowest id.
    fn pop(&mut self) -> Option<u64> {
        let best = self
            .pending
            .iter()
            .enumerate()
            .max_by(|(_, a), (_, b)| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))?
            .0;
        let (_, id) = self.pending.swap_remove(best);
        self.running.push(id);
        self.phases.insert(id, Phase::Running);
        Some(id)
    }

    /// Admits a new or retried task; returns whether it took a slot.
    fn admit(&mut self, id: u64) -> bool {
        if self.running.len() < self.limit {
            self.running.push(id);
            self.phases.insert(id, Phase::Running);
            true
        } else {
            self.pending.push((self.priorities[&id], id));
            self.phases.insert(id, Phase::Queued);
            false
        }
    }
}

fn check(queue: &Queue, model: &Model, jobs: &[Arc<TestJob>]) -> Result<(), TestCaseError> {
    let stats = queue.stats();
    prop_assert_eq!(stats.limit, model.limit);
    prop_assert_eq!(stats.running, model.running.len());
    prop_assert_eq!(stats.pending, model.pending.len());
    prop_assert_eq!(stats.retrying, model.retrying.len());
    prop_assert_eq!(stats.delayed, model.delayed.len());
    for job in jobs {
        let id = job.header().id.as_u64();
        prop_assert_eq!(job.header().phase(), model.phases[&id], "task {}", id);
        // Exactly the terminal tasks were ended, once each (the worker's own finishes are
        // not published in this test, only the canceller's).
        prop_assert!(job.published() <= 1);
    }
    Ok(())
}

fn run(initial_limit: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let queue = test_job::queue("q", initial_limit);
    let mut model = Model {
        limit: initial_limit,
        ..Model::default()
    };
    let mut jobs: Vec<Arc<TestJob>> = Vec::new();
    let job = |id: u64, jobs: &[Arc<TestJob>]| -> Arc<TestJob> {
        Arc::clone(jobs.iter().find(|j| j.header().id.as_u64() == id).unwrap())
    };

    for op in ops {
        let running_before = queue.stats().running;
        match op {
            Op::Enqueue { priority } => {
                let new = TestJob::new(&queue, priority);
                let id = new.header().id.as_u64();
                model.priorities.insert(id, priority);
                jobs.push(Arc::clone(&new));
                let started = queue.admit_new(new).is_some();
                prop_assert_eq!(started, model.admit(id));
            }
            Op::Finish { pick, retry } => {
                if model.running.is_empty() {
                    continue;
                }
                let id = model.running[pick % model.running.len()];
                let to = if retry {
                    Phase::Retrying
                } else {
                    Phase::Completed
                };
                let (phase, _, next) = end(&queue, &*job(id, &jobs), to);

                let expected = match model.phases[&id] {
                    Phase::Cancelling => Phase::Cancelled,
                    _ => to,
                };
                prop_assert_eq!(phase, expected);
                model.phases.insert(id, expected);
                if expected == Phase::Retrying {
                    model.retrying.push(id);
                }
                let slots = model.running.len();
                model.running.retain(|r| *r != id);
                let model_next = if slots > model.limit {
                    None
                } else {
                    model.pop()
                };
                prop_assert_eq!(next.as_ref().map(id_of), model_next);
            }
            Op::Cancel { pick } => {
                if jobs.is_empty() {
                    continue;
                }
                let target = Arc::clone(&jobs[pick % jobs.len()]);
                let id = target.header().id.as_u64();
                let cancelled = cancel(&queue, target.header());
                let from = cancelled.from;
                let expected = match model.phases[&id] {
                    Phase::Queued => {
                        model.pending.retain(|(_, p)| *p != id);
                        model.phases.insert(id, Phase::Cancelled);
                        CancelFrom::Queued
                    }
                    Phase::Retrying => {
                        model.retrying.retain(|r| *r != id);
                        model.phases.insert(id, Phase::Cancelled);
                        CancelFrom::Retrying
                    }
                    Phase::Delayed => {
                        model.delayed.retain(|r| *r != id);
                        model.phases.insert(id, Phase::Cancelled);
                        CancelFrom::Delayed
                    }
                    Phase::Running => {
                        model.phases.insert(id, Phase::Cancelling);
                        CancelFrom::Running
                    }
                    Phase::Cancelling => CancelFrom::Cancelling,
                    _ => CancelFrom::Finished,
                };
                prop_assert_eq!(from, expected);
                prop_assert_eq!(
                    cancelled.finished.is_some(),
                    matches!(
                        from,
                        CancelFrom::Queued | CancelFrom::Retrying | CancelFrom::Delayed
                    )
                );
                if let Some(finished) = cancelled.finished {
                    // As `Shared::cancel` does.
                    target.publish(finished);
                }
            }
            Op::RetryReady { pick } => {
                if model.retrying.is_empty() {
                    continue;
                }
                let id = model.retrying.swap_remove(pick % model.retrying.len());
                let started = queue.admit_retry(job(id, &jobs)).is_some();
                prop_assert_eq!(started, model.admit(id));
            }
            Op::StaleRetry { pick } => {
                let cancelled: Vec<u64> = jobs
                    .iter()
                    .map(|j| j.header().id.as_u64())
                    .filter(|id| model.phases[id] == Phase::Cancelled)
                    .collect();
                if cancelled.is_empty() {
                    continue;
                }
                let id = cancelled[pick % cancelled.len()];
                prop_assert!(queue.admit_retry(job(id, &jobs)).is_none());
            }
            Op::EnqueueDelayed { priority } => {
                let new = TestJob::new(&queue, priority);
                let id = new.header().id.as_u64();
                model.priorities.insert(id, priority);
                jobs.push(Arc::clone(&new));
                prop_assert!(queue.delay(new.header()));
                model.delayed.push(id);
                model.phases.insert(id, Phase::Delayed);
            }
            Op::DelayReady { pick } => {
                if model.delayed.is_empty() {
                    continue;
                }
                let id = model.delayed.swap_remove(pick % model.delayed.len());
                let started = queue.admit_delayed(job(id, &jobs)).is_some();
                prop_assert_eq!(started, model.admit(id));
            }
            Op::SetLimit { limit } => {
                let started: Vec<u64> = queue.set_limit(limit).iter().map(id_of).collect();
                model.limit = limit;
                let mut expected = Vec::new();
                while model.running.len() < model.limit {
                    match model.pop() {
                        Some(id) => expected.push(id),
                        None => break,
                    }
                }
                prop_assert_eq!(started, expected);
            }
        }
        check(&queue, &model, &jobs)?;
        // The limit is never exceeded by a start: running grows only up to the limit (after
        // a lowered limit it may stay above it, shrinking as tasks finish).
        let running = queue.stats().running;
        prop_assert!(running <= running_before || running <= model.limit);
    }
    Ok(())
}

proptest! {
    // A fixed count keeps CI fast; set PROPTEST_CASES for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_queue_matches_its_model(limit in 1..=3usize, ops in prop::collection::vec(op(), 1..120)) {
        run(limit, ops)?;
    }
}

#[test]
fn many_cancels_compact_the_heap_and_keep_counts() {
    let queue = test_job::queue("q", 1);
    let blocker = TestJob::new(&queue, 0);
    assert!(queue.admit_new(blocker).is_some());
    let jobs: Vec<_> = (0..1_000).map(|i| TestJob::new(&queue, i % 5)).collect();
    for job in &jobs {
        assert!(queue.admit_new(Arc::clone(job) as Arc<dyn Job>).is_none());
    }
    for job in jobs.iter().skip(1) {
        assert_eq!(cancel(&queue, job.header()).from, CancelFrom::Queued);
    }
    assert_eq!(queue.stats().pending, 1);
    // Compaction ran: far fewer than 999 tombstones are left.
    assert!(crate::sync::lock(&queue.state).waiting.len() < 100);
    let next = queue.set_limit(2);
    assert_eq!(next.len(), 1);
    assert_eq!(id_of(&next[0]), jobs[0].header().id.as_u64());
}

#[test]
fn a_drained_queue_holds_nothing() {
    let queue = test_job::queue("q", 1);
    let blocker = TestJob::new(&queue, 0);
    assert!(queue.admit_new(blocker.clone()).is_some());
    for _ in 0..10_000 {
        assert!(queue.admit_new(TestJob::new(&queue, 0)).is_none());
    }
    assert_eq!(crate::sync::lock(&queue.state).waiting.len(), 10_000);
    let mut job: Arc<dyn Job> = blocker;
    while let (_, _, Some(next)) = end(&queue, &*job, Phase::Completed) {
        job = next;
    }
    assert_eq!(crate::sync::lock(&queue.state).waiting.len(), 0);
}
