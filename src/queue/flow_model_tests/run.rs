//! One program run on a queue and on the model side by side, checked after every step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::model::{Model, Task};
use super::ops::{Config, Op, KEYS};
use crate::config::RateLimit;
use crate::queue::test_job::{self, cancel, end, id_of, TestJob};
use crate::queue::{Queue, QueueConfig};
use crate::sync::lock;
use crate::task::Job;
use crate::task::Phase;

pub(super) async fn run(config: Config, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut queue_config = QueueConfig::new().concurrency(config.limit);
    if let Some(n) = config.key_limit {
        queue_config = queue_config.key_concurrency(n);
    }
    if let Some((n, per)) = config.rate {
        queue_config = queue_config.rate_limit(RateLimit::new(n, Duration::from_millis(per)));
    }
    if let Some(n) = config.max_pending {
        queue_config = queue_config.max_pending(n);
    }
    let queue = Arc::new(Queue::with_config(test_job::tag("q"), &queue_config));
    let mut m = Model {
        limit: config.limit,
        room: config.max_pending.unwrap_or(0),
        config,
        tasks: Vec::new(),
        running: 0,
        keys: HashMap::new(),
        seq: 0,
        now: 0,
        paused: false,
        hold_until: 0,
        starts: Vec::new(),
        overflow: 0,
    };
    let by_phase = |m: &Model, phase: Phase| -> Vec<usize> {
        (0..m.tasks.len())
            .filter(|&i| m.tasks[i].phase == phase)
            .collect()
    };

    for op in ops {
        match op {
            Op::Enqueue {
                priority,
                key,
                delayed,
            } => {
                let job = TestJob::with_key(&queue, priority, key.map(|k| KEYS[k]));
                let seq = m.next_seq();
                m.tasks.push(Task {
                    job: Arc::clone(&job),
                    id_seq: seq,
                    seq,
                    priority,
                    key,
                    phase: Phase::New,
                });
                let i = m.tasks.len() - 1;
                if delayed {
                    prop_assert!(queue.delay(job.header()));
                    m.tasks[i].phase = Phase::Delayed;
                    continue;
                }
                if let Some(room) = queue.room() {
                    // As `enqueue_task` does: a place first, or the task is refused.
                    match room.try_acquire() {
                        Ok(permit) => permit.forget(),
                        Err(_) => {
                            prop_assert_eq!(m.room, 0);
                            m.tasks.pop();
                            continue;
                        }
                    }
                    m.room -= 1;
                }
                let started = queue.admit_new(job).is_some();
                prop_assert_eq!(started, m.admit(i, true));
            }
            Op::Finish { pick, retry } => {
                let running = by_phase(&m, Phase::Running)
                    .into_iter()
                    .chain(by_phase(&m, Phase::Cancelling))
                    .collect::<Vec<_>>();
                if running.is_empty() {
                    continue;
                }
                let i = running[pick % running.len()];
                let to = if retry {
                    Phase::Retrying
                } else {
                    Phase::Completed
                };
                let job: Arc<dyn Job> = m.tasks[i].job.clone();
                let (phase, _, next) = end(&queue, &*job, to);
                let expected = if m.tasks[i].phase == Phase::Cancelling {
                    Phase::Cancelled
                } else {
                    to
                };
                prop_assert_eq!(phase, expected);
                m.tasks[i].phase = expected;
                let over = m.running > m.limit;
                m.running -= 1;
                if let Some(k) = m.keyed(m.tasks[i].key) {
                    m.keys.get_mut(&k).unwrap().running -= 1;
                    m.refresh(k);
                }
                let model_next = if over { None } else { m.pop() };
                prop_assert_eq!(next.as_ref().map(id_of), model_next);
            }
            Op::Cancel { pick } => {
                if m.tasks.is_empty() {
                    continue;
                }
                let i = pick % m.tasks.len();
                drop(cancel(&queue, m.tasks[i].job.header()));
                match m.tasks[i].phase {
                    Phase::Queued => {
                        m.tasks[i].phase = Phase::Cancelled;
                        m.leave_room();
                        if let Some(k) = m.keyed(m.tasks[i].key) {
                            m.refresh(k);
                        }
                    }
                    Phase::Running => m.tasks[i].phase = Phase::Cancelling,
                    Phase::Retrying | Phase::Delayed => m.tasks[i].phase = Phase::Cancelled,
                    _ => {}
                }
            }
            Op::RetryReady { pick } | Op::DelayReady { pick } => {
                let (from, delayed) = match op {
                    Op::RetryReady { .. } => (Phase::Retrying, false),
                    _ => (Phase::Delayed, true),
                };
                let waiting = by_phase(&m, from);
                if waiting.is_empty() {
                    continue;
                }
                let i = waiting[pick % waiting.len()];
                let job: Arc<dyn Job> = m.tasks[i].job.clone();
                let started = if delayed {
                    queue.admit_delayed(job).is_some()
                } else {
                    queue.admit_retry(job).is_some()
                };
                prop_assert_eq!(started, m.admit(i, false));
            }
            Op::SetLimit { limit } => {
                let started: Vec<u64> = queue.set_limit(limit).iter().map(id_of).collect();
                m.limit = limit;
                prop_assert_eq!(started, m.fill());
            }
            Op::SetPriority { pick, priority } => {
                if m.tasks.is_empty() {
                    continue;
                }
                let i = pick % m.tasks.len();
                let job: Arc<dyn Job> = m.tasks[i].job.clone();
                let moved = queue.set_priority(&job, priority);
                let expected = m.tasks[i].phase == Phase::Queued && m.tasks[i].priority != priority;
                prop_assert_eq!(moved, expected);
                if expected {
                    m.tasks[i].priority = priority;
                    m.tasks[i].seq = m.next_seq();
                    if let Some(k) = m.keyed(m.tasks[i].key) {
                        m.refresh(k);
                    }
                }
            }
            Op::Pause => {
                queue.pause();
                m.paused = true;
            }
            Op::Resume => {
                let started: Vec<u64> = queue.resume().iter().map(id_of).collect();
                m.paused = false;
                prop_assert_eq!(started, m.fill());
            }
            Op::Hold { ms } => {
                queue.hold_for(Duration::from_millis(ms));
                m.hold_until = m.hold_until.max(m.now + ms);
            }
            Op::Advance { ms } => {
                tokio::time::advance(Duration::from_millis(ms)).await;
                m.now += ms;
                // The queue's timer, had it one, fires at or before now.
                let started: Vec<u64> = queue.wake().iter().map(id_of).collect();
                prop_assert_eq!(started, m.fill());
            }
        }
        check(&queue, &m)?;
    }
    Ok(())
}

fn check(queue: &Queue, m: &Model) -> Result<(), TestCaseError> {
    let count = |phase: Phase| m.tasks.iter().filter(|t| t.phase == phase).count();
    let stats = queue.stats();
    prop_assert_eq!(stats.limit, m.limit);
    prop_assert_eq!(stats.running, m.running);
    prop_assert_eq!(stats.pending, count(Phase::Queued));
    prop_assert_eq!(stats.retrying, count(Phase::Retrying));
    prop_assert_eq!(stats.delayed, count(Phase::Delayed));
    prop_assert_eq!(stats.paused, m.paused || m.hold_until > m.now);
    for t in &m.tasks {
        prop_assert_eq!(
            t.job.header().phase(),
            t.phase,
            "task {}",
            t.job.header().id
        );
    }
    // No key runs more than its limit; an idle key holds no memory.
    if let Some(limit) = m.config.key_limit {
        for k in 0..KEYS.len() {
            let running = m
                .tasks
                .iter()
                .filter(|t| {
                    t.key == Some(k) && matches!(t.phase, Phase::Running | Phase::Cancelling)
                })
                .count();
            prop_assert!(running <= limit);
        }
    }
    let active = lock(&queue.state)
        .flow
        .as_ref()
        .map_or(0, |f| f.active_keys());
    prop_assert_eq!(active, m.keys.len());
    // No window of the rate's length holds more starts than it allows.
    if let Some((n, per)) = m.config.rate {
        for (i, &s) in m.starts.iter().enumerate() {
            let inside = m.starts[i..].iter().filter(|&&t| t < s + per).count();
            prop_assert!(
                inside <= n as usize,
                "{} starts in [{}, +{})",
                inside,
                s,
                per
            );
        }
    }
    if let Some(room) = queue.room() {
        prop_assert_eq!(room.available_permits(), m.room);
    }
    Ok(())
}
