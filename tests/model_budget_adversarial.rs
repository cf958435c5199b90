//! A second model-based test of budgets, on tokio's paused clock, adding what
//! `model_budget.rs` leaves out: group members (a group of 1 across the queue's keys),
//! `set_priority` moves, pauses and resumes, cancels of waiting heads, and optionally
//! `key_concurrency` next to `key_budget`. At the end:
//!
//! - in every window of `PER` (of the queue's budget and of each key's) the units charged —
//!   each attempt's estimate, replaced by its one charge, counted at its start — never
//!   exceed the budget except by the overshoot (charge − estimate) of attempts in it;
//! - every accepted task ends (none is lost or stuck waiting for budget);
//! - a task cancelled before it started was never charged.

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
    /// Move the task enqueued `n` enqueues ago to a priority.
    SetPriority(usize, i32),
    Pause,
    Resume,
    Advance(u64),
}

#[derive(Debug, Clone)]
struct Spec {
    priority: i32,
    cost: Option<u64>,
    actual: Option<u64>,
    charge_after: u64,
    work: u64,
    key: Option<u8>,
    grouped: bool,
    fail_first: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (0..3i32, prop::option::weighted(0.9, 0..=100u64)),
        prop::option::weighted(0.7, 0..=120u64),
        (0..200u64, 0..400u64),
        prop::option::weighted(0.5, 0..3u8),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |((priority, cost), actual, (charge_after, work), key, grouped, fail_first)| Spec {
                priority,
                cost,
                actual,
                charge_after,
                work,
                key,
                grouped,
                fail_first,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => spec().prop_map(Op::Enqueue),
        1 => (0..6usize).prop_map(Op::Cancel),
        1 => (0..6usize, -1..4i32).prop_map(|(n, p)| Op::SetPriority(n, p)),
        1 => Just(Op::Pause),
        1 => Just(Op::Resume),
        3 => (0..700u64).prop_map(Op::Advance),
    ]
}

/// Each attempt's start: (task, attempt, when); each charge: (task, attempt, amount).
#[derive(Default)]
struct Seen {
    starts: Mutex<Vec<(usize, u32, Instant)>>,
    charges: Mutex<Vec<(usize, u32, u64)>>,
}

struct Accepted {
    spec: Spec,
    id: taskrunner::TaskId,
    cancelled_pending: bool,
}

async fn run(ops: Vec<Op>, key_concurrency: bool) -> Result<(), TestCaseError> {
    let mut config = QueueConfig::new()
        .concurrency(4)
        .budget(Budget::new(UNITS, PER))
        .key_budget(Budget::new(KEY_UNITS, PER));
    if key_concurrency {
        config = config.key_concurrency(1);
    }
    let runner = TaskRunner::builder().queue("llm", config).build().unwrap();
    let group = runner.group().concurrency(1);
    let seen = Arc::new(Seen::default());
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut handles = Vec::new();
    for op in ops {
        match op {
            Op::Enqueue(spec) => {
                let index = accepted.len();
                let (s, log) = (spec.clone(), Arc::clone(&seen));
                let mut task = Task::new("call", move |ctx: TaskContext| {
                    let attempt = ctx.attempt();
                    log.starts
                        .lock()
                        .unwrap()
                        .push((index, attempt, Instant::now()));
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
                let over = spec
                    .cost
                    .is_some_and(|c| spec.key.is_some() && c > KEY_UNITS);
                let result = if spec.grouped {
                    group.enqueue_task(task)
                } else {
                    runner.enqueue_task(task)
                };
                match result {
                    Ok(handle) => {
                        prop_assert!(!over, "{spec:?} over a budget was accepted");
                        accepted.push(Accepted {
                            spec,
                            id: handle.id(),
                            cancelled_pending: false,
                        });
                        handles.push(handle);
                    }
                    Err(EnqueueError::OverBudget { .. }) => prop_assert!(over, "{spec:?}"),
                    Err(other) => prop_assert!(false, "{other}"),
                }
            }
            Op::Cancel(back) => {
                if let Some(i) = accepted.len().checked_sub(back + 1) {
                    let id = accepted[i].id;
                    let pending = runner
                        .get_status(id)
                        .is_some_and(|info| info.status == TaskStatus::Pending);
                    if runner.cancel(id) && pending {
                        accepted[i].cancelled_pending = true;
                    }
                }
            }
            Op::SetPriority(back, priority) => {
                if let Some(i) = accepted.len().checked_sub(back + 1) {
                    runner.set_priority(accepted[i].id, priority);
                }
            }
            Op::Pause => runner.pause_queue("llm").unwrap(),
            Op::Resume => runner.resume_queue("llm").unwrap(),
            Op::Advance(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }
    runner.resume_queue("llm").unwrap();
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
    // Each attempt: (key, start, amount, overshoot).
    let attempts: Vec<(Option<u8>, Instant, u64, u64)> = starts
        .iter()
        .map(|&(task, attempt, at)| {
            let estimate = accepted[task].spec.cost.unwrap_or(0);
            let charged = charges
                .iter()
                .find(|c| c.0 == task && c.1 == attempt)
                .map(|c| c.2);
            let amount = charged.unwrap_or(estimate);
            (
                accepted[task].spec.key,
                at,
                amount,
                amount.saturating_sub(estimate),
            )
        })
        .collect();
    for &(_, s, _, _) in &attempts {
        let window = |keep: &dyn Fn(Option<u8>) -> bool| {
            let inside = attempts
                .iter()
                .filter(|a| keep(a.0) && a.1 >= s && a.1 < s + PER);
            inside.fold((0, 0), |(sum, over), a| (sum + a.2, over + a.3))
        };
        let (sum, over) = window(&|_| true);
        prop_assert!(
            sum <= UNITS + over,
            "queue window from {s:?}: {sum} > {UNITS} + overshoot {over}"
        );
        for key in 0..3u8 {
            let (sum, over) = window(&|k| k == Some(key));
            prop_assert!(
                sum <= KEY_UNITS + over,
                "key {key} window from {s:?}: {sum} > {KEY_UNITS} + {over}"
            );
        }
    }
    for (t, task) in accepted.iter().enumerate() {
        let info = runner.get_status(task.id).unwrap();
        prop_assert!(info.status.is_terminal(), "task {t} is {:?}", info.status);
        let started = starts.iter().any(|s| s.0 == t);
        if task.cancelled_pending && !started {
            prop_assert_eq!(info.charged, None, "task {} cancelled before it started", t);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn budgets_hold_with_groups_moves_and_pauses(
        ops in prop::collection::vec(op(), 1..40),
        key_concurrency in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run(ops, key_concurrency))?;
    }
}
