//! The queue's flow-control path checked step by step against a reference model on random
//! programs: concurrency keys, a rate limit, pauses and holds, delays, `set_priority` and
//! `max_pending` in the mix. The model is a plain scan over every task, so it predicts
//! every start exactly: which task takes a slot, when a rate limit or pause holds it back,
//! and which key's turn it is (keys of equal priority take turns by the moment they became
//! ready, drawn from the same counter as task ids).
//!
//! Invariants checked after every step: the queue's counts and every task's phase match the
//! model; no queue runs more than its limit, no key more than its limit; no window of the
//! rate's length holds more starts than it allows; a key's state is gone once it has nothing
//! waiting or running; `max_pending`'s room matches.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::test_job::{self, cancel, end, id_of, TestJob};
use super::{Queue, QueueConfig};
use crate::config::RateLimit;
use crate::sync::lock;
use crate::task::Job;
use crate::task::Phase;

const KEYS: [&str; 3] = ["k0", "k1", "k2"];

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        priority: i32,
        key: Option<usize>,
        delayed: bool,
    },
    Finish {
        pick: usize,
        retry: bool,
    },
    Cancel {
        pick: usize,
    },
    RetryReady {
        pick: usize,
    },
    DelayReady {
        pick: usize,
    },
    SetLimit {
        limit: usize,
    },
    SetPriority {
        pick: usize,
        priority: i32,
    },
    Pause,
    Resume,
    Hold {
        ms: u64,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (-2..=2i32, prop::option::of(0..KEYS.len()), prop::bool::weighted(0.15))
            .prop_map(|(priority, key, delayed)| Op::Enqueue { priority, key, delayed }),
        4 => (any::<usize>(), prop::bool::weighted(0.3)).prop_map(|(pick, retry)| Op::Finish { pick, retry }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => any::<usize>().prop_map(|pick| Op::RetryReady { pick }),
        1 => any::<usize>().prop_map(|pick| Op::DelayReady { pick }),
        1 => (1..=4usize).prop_map(|limit| Op::SetLimit { limit }),
        1 => (any::<usize>(), -2..=2i32).prop_map(|(pick, priority)| Op::SetPriority { pick, priority }),
        1 => Just(Op::Pause),
        1 => Just(Op::Resume),
        1 => (1..=6u64).prop_map(|n| Op::Hold { ms: n * 10 }),
        3 => (1..=6u64).prop_map(|n| Op::Advance { ms: n * 10 }),
    ]
}

#[derive(Debug, Clone)]
struct Config {
    limit: usize,
    key_limit: Option<usize>,
    rate: Option<(u32, u64)>,
    max_pending: Option<usize>,
}

fn config() -> impl Strategy<Value = Config> {
    (
        1..=3usize,
        prop::option::of(1..=2usize),
        prop::option::of((1..=3u32, prop_oneof![Just(50u64), Just(100u64)])),
        prop::option::of(1..=4usize),
    )
        .prop_map(|(limit, key_limit, rate, max_pending)| Config {
            limit,
            key_limit,
            rate,
            max_pending,
        })
}

struct Task {
    job: Arc<TestJob>,
    /// Its creation number (ids and token numbers share one counter).
    id_seq: u64,
    /// The number it ranks by among equal priorities (a fresh one once moved).
    seq: u64,
    priority: i32,
    key: Option<usize>,
    phase: Phase,
}

#[derive(Default)]
struct KeyModel {
    running: usize,
    /// (priority, number) of the key's turn.
    token: Option<(i32, u64)>,
}

struct Model {
    config: Config,
    limit: usize,
    tasks: Vec<Task>,
    running: usize,
    keys: HashMap<usize, KeyModel>,
    seq: u64,
    now: u64,
    paused: bool,
    hold_until: u64,
    starts: Vec<u64>,
    room: usize,
    overflow: usize,
}

impl Model {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn blocked(&self) -> bool {
        if self.paused || self.hold_until > self.now {
            return true;
        }
        match self.config.rate {
            Some((n, per)) if self.starts.len() >= n as usize => {
                self.starts[self.starts.len() - n as usize] + per > self.now
            }
            _ => false,
        }
    }

    fn keyed(&self, key: Option<usize>) -> Option<usize> {
        key.filter(|_| self.config.key_limit.is_some())
    }

    fn key_free(&self, key: Option<usize>) -> bool {
        match (self.keyed(key), self.config.key_limit) {
            (Some(k), Some(limit)) => self.keys.get(&k).is_none_or(|m| m.running < limit),
            _ => true,
        }
    }

    /// As the queue's `Keys::refresh`: a token ranked by the key's best waiting task exactly
    /// when it may start one, re-drawn when its rank changes; the key dropped when idle.
    fn refresh(&mut self, k: usize) {
        let Some(limit) = self.config.key_limit else {
            return;
        };
        if !self.keys.contains_key(&k) {
            return;
        }
        let best = self
            .tasks
            .iter()
            .filter(|t| t.phase == Phase::Queued && t.key == Some(k))
            .map(|t| t.priority)
            .max();
        let running = self.keys[&k].running;
        if running == 0 && best.is_none() {
            self.keys.remove(&k);
            return;
        }
        match best {
            Some(priority) if running < limit => {
                if self.keys[&k].token.is_some_and(|(p, _)| p == priority) {
                    return;
                }
                let seq = self.next_seq();
                self.keys.get_mut(&k).unwrap().token = Some((priority, seq));
            }
            _ => self.keys.get_mut(&k).unwrap().token = None,
        }
    }

    fn leave_room(&mut self) {
        if self.config.max_pending.is_some() {
            if self.overflow > 0 {
                self.overflow -= 1;
            } else {
                self.room += 1;
            }
        }
    }

    fn start(&mut self, i: usize) {
        self.tasks[i].phase = Phase::Running;
        self.running += 1;
        self.starts.push(self.now);
    }

    /// Takes the best startable task, if nothing holds every start back.
    fn pop(&mut self) -> Option<u64> {
        if self.blocked() {
            return None;
        }
        let rank = |p: i32, seq: u64| (p, std::cmp::Reverse(seq));
        let keyless = self
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.phase == Phase::Queued && self.keyed(t.key).is_none())
            .map(|(i, t)| (rank(t.priority, t.seq), Err(i)));
        let tokens = self
            .keys
            .iter()
            .filter_map(|(k, m)| m.token.map(|(p, seq)| (rank(p, seq), Ok(*k))));
        let (_, best) = keyless.chain(tokens).max_by_key(|(r, _)| *r)?;
        let i = match best {
            Err(i) => i,
            Ok(k) => {
                self.keys.get_mut(&k).unwrap().token = None;
                let i = self
                    .tasks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.phase == Phase::Queued && t.key == Some(k))
                    .max_by_key(|(_, t)| rank(t.priority, t.seq))
                    .unwrap()
                    .0;
                self.keys.get_mut(&k).unwrap().running += 1;
                self.tasks[i].phase = Phase::Running;
                self.refresh(k);
                i
            }
        };
        self.start(i);
        self.leave_room();
        Some(self.tasks[i].job.header().id.as_u64())
    }

    fn fill(&mut self) -> Vec<u64> {
        let mut started = Vec::new();
        while self.running < self.limit {
            match self.pop() {
                Some(id) => started.push(id),
                None => break,
            }
        }
        started
    }

    /// Admits task `i` (new, or back from a backoff or delay); returns whether it started.
    fn admit(&mut self, i: usize, new: bool) -> bool {
        let key = self.keyed(self.tasks[i].key);
        let start = self.running < self.limit && !self.blocked() && self.key_free(key);
        self.tasks[i].seq = self.tasks[i].id_seq;
        if start {
            self.start(i);
            if let Some(k) = key {
                self.keys.entry(k).or_default().running += 1;
            }
            if new && self.config.max_pending.is_some() {
                self.room += 1;
            }
            return true;
        }
        if !new && self.config.max_pending.is_some() {
            if self.room > 0 {
                self.room -= 1;
            } else {
                self.overflow += 1;
            }
        }
        self.tasks[i].phase = Phase::Queued;
        if let Some(k) = key {
            self.keys.entry(k).or_default();
            self.refresh(k);
        }
        false
    }
}

async fn run(config: Config, ops: Vec<Op>) -> Result<(), TestCaseError> {
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

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_flow_path_matches_its_model(config in config(), ops in prop::collection::vec(op(), 1..150)) {
        // A paused clock that only `Advance` moves.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run(config, ops))?;
    }
}

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
