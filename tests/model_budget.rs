//! The model-based test of budgets (`QueueConfig::budget` and `key_budget`), on tokio's
//! paused clock: random programs enqueue tasks with random estimates, priorities, keys and
//! true costs (charged less or more than the estimate, or never), some failing once and
//! retried (charging again), cancel some (before they start and while they run), and let
//! time pass. At the end:
//!
//! - in every window of `PER` (of the queue's budget, and of each key's budget) the units
//!   charged — each attempt's estimate, replaced by its charge, counted at its start — never
//!   exceed the budget except by the overshoot (charge − estimate) of attempts in that window
//!   that charged more than they estimated;
//! - priority order holds among tasks without a key: no task's first attempt starts while a
//!   better-ranked one (higher priority, or equal and enqueued first) waits for its first;
//! - an estimate over a whole budget is refused at enqueue, every other task is accepted,
//!   and every accepted task ends (completed, failed or cancelled): none is lost;
//! - a task cancelled before it started was never charged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use taskrunner::{
    Budget, EnqueueError, QueueConfig, RetryPolicy, Task, TaskContext, TaskRunner, TaskStatus,
};
use tokio::time::Instant;

const UNITS: u64 = 100;
const KEY_UNITS: u64 = 60;
const PER: Duration = Duration::from_millis(1_000);

#[derive(Debug, Clone)]
enum Op {
    Enqueue(Spec),
    /// Cancel the task enqueued `n` enqueues ago (if any).
    Cancel(usize),
    Advance(u64),
}

#[derive(Debug, Clone)]
struct Spec {
    priority: i32,
    cost: Option<u64>,
    /// What the handler charges after `charge_after` ms, if it does.
    actual: Option<u64>,
    charge_after: u64,
    work: u64,
    key: Option<u8>,
    fail_first: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..3i32,
        prop::option::weighted(0.9, 0..=110u64),
        prop::option::weighted(0.7, 0..=120u64),
        0..200u64,
        0..400u64,
        prop::option::weighted(0.4, 0..2u8),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(priority, cost, actual, charge_after, work, key, fail_first)| Spec {
                priority,
                cost,
                actual,
                charge_after,
                work,
                key,
                fail_first,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => spec().prop_map(Op::Enqueue),
        1 => (0..6usize).prop_map(Op::Cancel),
        2 => (0..700u64).prop_map(Op::Advance),
    ]
}

/// What the handlers saw, in one sequence (the `u64` is the event's place in it).
#[derive(Default)]
struct Seen {
    seq: AtomicU64,
    /// (task, attempt, start time, seq)
    starts: Mutex<Vec<(usize, u32, Instant, u64)>>,
    /// (task, attempt) → last charge
    charges: Mutex<Vec<(usize, u32, u64)>>,
}

impl Seen {
    fn next(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }
}

struct Accepted {
    spec: Spec,
    id: taskrunner::TaskId,
    enqueued: u64,
    /// When `cancel` took it out before its first start.
    cancelled_pending: Option<u64>,
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let config = QueueConfig::new()
        .concurrency(3)
        .budget(Budget::new(UNITS, PER))
        .key_budget(Budget::new(KEY_UNITS, PER));
    let runner = TaskRunner::builder().queue("llm", config).build().unwrap();
    let seen = Arc::new(Seen::default());
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut handles = Vec::new();
    for op in ops {
        match op {
            Op::Enqueue(spec) => {
                let index = accepted.len();
                let s = spec.clone();
                let log = Arc::clone(&seen);
                let mut task = Task::new("call", move |ctx: TaskContext| {
                    let seq = log.next();
                    let attempt = ctx.attempt();
                    let now = Instant::now();
                    log.starts.lock().unwrap().push((index, attempt, now, seq));
                    let (s, log) = (s.clone(), Arc::clone(&log));
                    async move {
                        tokio::time::sleep(Duration::from_millis(s.charge_after)).await;
                        if let Some(actual) = s.actual {
                            ctx.charge(actual);
                            log.charges.lock().unwrap().push((index, attempt, actual));
                        }
                        tokio::time::sleep(Duration::from_millis(s.work)).await;
                        if s.fail_first && attempt == 1 {
                            return Err("429".to_owned());
                        }
                        Ok(())
                    }
                })
                .queue("llm")
                .priority(spec.priority)
                .retry(RetryPolicy::fixed(Duration::from_millis(50)).max_retries(1));
                if let Some(cost) = spec.cost {
                    task = task.cost(cost);
                }
                if let Some(key) = spec.key {
                    task = task.concurrency_key(format!("k{key}"));
                }
                let enqueued = seen.next();
                let over = spec
                    .cost
                    .is_some_and(|c| c > UNITS || (spec.key.is_some() && c > KEY_UNITS));
                match runner.enqueue_task(task) {
                    Ok(handle) => {
                        prop_assert!(!over, "{spec:?} over a budget was accepted");
                        accepted.push(Accepted {
                            spec,
                            id: handle.id(),
                            enqueued,
                            cancelled_pending: None,
                        });
                        handles.push(handle);
                    }
                    Err(EnqueueError::OverBudget { cost, .. }) => {
                        prop_assert!(over, "{spec:?} refused");
                        prop_assert_eq!(Some(cost), spec.cost);
                    }
                    Err(other) => prop_assert!(false, "{other}"),
                }
            }
            Op::Cancel(back) => {
                if let Some(i) = accepted.len().checked_sub(back + 1) {
                    let id = accepted[i].id;
                    let pending = runner
                        .get_status(id)
                        .is_some_and(|info| info.status == TaskStatus::Pending);
                    let seq = seen.next();
                    if runner.cancel(id) && pending {
                        accepted[i].cancelled_pending = Some(seq);
                    }
                }
            }
            Op::Advance(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
        // Let the workers the queue just started run their handlers' first poll, so that a
        // start is logged before the next operation.
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }
    for handle in handles {
        let _ = tokio::time::timeout(Duration::from_secs(3600), handle)
            .await
            .map_err(|_| TestCaseError::fail("a task never ended"))?;
    }
    check(&seen, &accepted, &runner)
}

fn check(seen: &Seen, accepted: &[Accepted], runner: &TaskRunner) -> Result<(), TestCaseError> {
    let starts = seen.starts.lock().unwrap().clone();
    let charges = seen.charges.lock().unwrap().clone();
    // Each attempt: (task, key, start, amount, overshoot).
    let attempts: Vec<(usize, Option<u8>, Instant, u64, u64)> = starts
        .iter()
        .map(|&(task, attempt, at, _)| {
            let estimate = accepted[task].spec.cost.unwrap_or(0);
            let charged = charges
                .iter()
                .rev()
                .find(|c| c.0 == task && c.1 == attempt)
                .map(|c| c.2);
            let amount = charged.unwrap_or(estimate);
            (
                task,
                accepted[task].spec.key,
                at,
                amount,
                amount.saturating_sub(estimate),
            )
        })
        .collect();
    for &(_, _, s, _, _) in &attempts {
        let window = |keep: &dyn Fn(Option<u8>) -> bool, units: u64| {
            let inside = attempts
                .iter()
                .filter(|a| keep(a.1) && a.2 >= s && a.2 < s + PER);
            let (sum, over) = inside.fold((0, 0), |(sum, over), a| (sum + a.3, over + a.4));
            (sum <= units + over, sum, over)
        };
        let (ok, sum, over) = window(&|_| true, UNITS);
        prop_assert!(
            ok,
            "queue window from {s:?}: {sum} > {UNITS} + overshoot {over}"
        );
        for key in 0..2u8 {
            let (ok, sum, over) = window(&|k| k == Some(key), KEY_UNITS);
            prop_assert!(
                ok,
                "key {key} window from {s:?}: {sum} > {KEY_UNITS} + {over}"
            );
        }
    }
    // Priority order among tasks without a key (first attempts).
    let first_start = |task: usize| {
        starts
            .iter()
            .filter(|s| s.0 == task && s.1 == 1)
            .map(|s| s.3)
            .next()
    };
    for (t, task) in accepted.iter().enumerate() {
        let Some(started) = first_start(t).filter(|_| task.spec.key.is_none()) else {
            continue;
        };
        for (u, better) in accepted.iter().enumerate() {
            let ranks_higher = better.spec.priority > task.spec.priority
                || (better.spec.priority == task.spec.priority && u < t);
            let waiting = better.spec.key.is_none()
                && better.enqueued < started
                && better.cancelled_pending.is_none_or(|c| c > started)
                && first_start(u).is_none_or(|s| s > started);
            prop_assert!(
                !(ranks_higher && waiting),
                "task {t} ({:?}) started while better task {u} ({:?}) waited",
                task.spec,
                better.spec
            );
        }
    }
    for (t, task) in accepted.iter().enumerate() {
        let info = runner.get_status(task.id).unwrap();
        prop_assert!(info.status.is_terminal(), "task {t} is {:?}", info.status);
        if task.cancelled_pending.is_some() && first_start(t).is_none() {
            prop_assert_eq!(info.charged, None, "task {} cancelled before it started", t);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn budgets_hold_in_every_window_and_keep_priority_order(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run(ops))?;
    }
}
