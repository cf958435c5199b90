//! Random programs run against the real runner on a paused clock, checked against a model.
//!
//! A program enqueues scripted tasks (each attempt succeeds, fails or panics after a delay,
//! or hangs), cancels some, resizes queues, lets time pass, and ends with `shutdown` or
//! `shutdown_now`. After every step and at the end the invariants below must hold. Start
//! order within a queue is checked exactly by the queue's own model test
//! (`src/queue/model_tests.rs`); here the whole runner is checked end to end.
//!
//! - running ≤ limit for every queue (after a lowered limit, running only shrinks);
//! - every slot is held by a handler actually running: backoff holds none, none leak;
//! - `queue_stats` agrees with the statuses of the queue's tasks;
//! - attempts ≤ 1 + max_retries;
//! - a task cancelled while pending never starts (another attempt);
//! - every handle resolves, to the outcome the model predicts: the script's natural
//!   outcome, `Cancelled` when `cancel` returned true, `Shutdown` for what `shutdown_now`
//!   caught;
//! - at the end nothing is pending or running, and every handler and its captures are freed.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use futures::FutureExt;
use proptest::prelude::*;
use taskrunner::{
    QueueConfig, RetryPolicy, Task, TaskContext, TaskError, TaskHandle, TaskRunner, TaskStatus,
};

const QUEUES: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Ok(u64),
    Fail(u64),
    Panic(u64),
    Hang,
}

#[derive(Debug, Clone)]
struct Spec {
    queue: usize,
    priority: i32,
    script: Vec<Step>,
    retries: Option<u32>,
    timeout: Option<u64>,
}

#[derive(Debug, Clone)]
enum Op {
    Enqueue(Spec),
    Cancel(usize),
    Resize(usize, usize),
    Advance(u64),
}

// Step durations are multiples of 10 ms and timeouts end in 5, so an attempt's end never
// ties with its timeout.
fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1..=5u64).prop_map(|n| Step::Ok(n * 10)),
        3 => (1..=5u64).prop_map(|n| Step::Fail(n * 10)),
        1 => (1..=5u64).prop_map(|n| Step::Panic(n * 10)),
        1 => Just(Step::Hang),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..QUEUES.len(),
        -2..=2i32,
        prop::collection::vec(step(), 1..4),
        prop::option::of(0..=3u32),
        prop::option::of((1..=5u64).prop_map(|n| n * 10 + 5)),
    )
        .prop_map(|(queue, priority, script, retries, timeout)| Spec {
            queue,
            priority,
            script,
            retries,
            timeout,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => spec().prop_map(Op::Enqueue),
        2 => any::<usize>().prop_map(Op::Cancel),
        1 => (0..QUEUES.len(), 1..=4usize).prop_map(|(q, n)| Op::Resize(q, n)),
        3 => (1..=60u64).prop_map(Op::Advance),
    ]
}

/// What a task comes to if nothing stops it: the outcome and how many attempts it takes.
#[derive(Debug, Clone, PartialEq)]
enum Natural {
    Ok(u32),
    Failed(String),
    Panicked,
    TimedOut,
    /// Hangs with no timeout: only a cancel or shutdown_now ends it.
    Hangs,
}

fn natural(spec: &Spec) -> (Natural, u32) {
    let retries = spec.retries.unwrap_or(0);
    let mut attempt = 1;
    loop {
        let step = spec.script[(attempt as usize - 1).min(spec.script.len() - 1)];
        let timed_out = match (step, spec.timeout) {
            (Step::Hang, Some(_)) => true,
            (Step::Hang, None) => return (Natural::Hangs, attempt),
            (Step::Ok(ms) | Step::Fail(ms) | Step::Panic(ms), Some(t)) => ms > t,
            _ => false,
        };
        let retryable = if timed_out {
            Natural::TimedOut
        } else {
            match step {
                Step::Ok(_) => return (Natural::Ok(attempt), attempt),
                Step::Panic(_) => return (Natural::Panicked, attempt),
                Step::Fail(_) => Natural::Failed(format!("fail {attempt}")),
                Step::Hang => unreachable!("handled above"),
            }
        };
        if attempt > retries {
            return (retryable, attempt);
        }
        attempt += 1;
    }
}

/// Per-task observations made by its handler.
#[derive(Default)]
struct Seen {
    attempts: AtomicU32,
}

/// Handlers inside, per queue.
#[derive(Default)]
struct Inside([AtomicUsize; 2]);

struct Guard<'a>(&'a AtomicUsize);
impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

type Handle = TaskHandle<u32, String>;

struct Tracked {
    spec: Spec,
    handle: Option<Handle>,
    seen: Arc<Seen>,
    /// `cancel()` returned true.
    cancelled: bool,
    /// Attempts started when it was cancelled while pending.
    cancelled_pending_at: Option<u32>,
}

fn enqueue(
    runner: &TaskRunner,
    spec: &Spec,
    seen: &Arc<Seen>,
    inside: &Arc<Inside>,
    alive: &Arc<()>,
) -> Handle {
    let (script, queue) = (spec.script.clone(), spec.queue);
    let (seen, inside, alive) = (Arc::clone(seen), Arc::clone(inside), Arc::clone(alive));
    let mut task = Task::new("scripted", move |ctx: TaskContext| {
        seen.attempts.fetch_add(1, Ordering::SeqCst);
        let step = script[(ctx.attempt() as usize - 1).min(script.len() - 1)];
        let (inside, alive) = (Arc::clone(&inside), Arc::clone(&alive));
        async move {
            let _alive = alive;
            inside.0[queue].fetch_add(1, Ordering::SeqCst);
            let _guard = Guard(&inside.0[queue]);
            match step {
                Step::Ok(ms) | Step::Fail(ms) | Step::Panic(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await
                }
                Step::Hang => std::future::pending().await,
            }
            match step {
                Step::Ok(_) => Ok(ctx.attempt()),
                Step::Panic(_) => panic!("scripted panic"),
                _ => Err(format!("fail {}", ctx.attempt())),
            }
        }
    })
    .queue(QUEUES[spec.queue])
    .priority(spec.priority);
    if let Some(retries) = spec.retries {
        task = task.retry(RetryPolicy::fixed(Duration::from_millis(25)).max_retries(retries));
    }
    if let Some(ms) = spec.timeout {
        task = task.timeout(Duration::from_millis(ms));
    }
    runner.enqueue_task(task).expect("enqueue")
}

fn check_step(
    runner: &TaskRunner,
    tasks: &[Tracked],
    inside: &Inside,
    running_before: &mut [usize; 2],
) -> Result<(), TestCaseError> {
    for (q, name) in QUEUES.iter().enumerate() {
        let stats = runner.queue_stats(name).unwrap();
        prop_assert!(
            stats.running <= stats.limit || stats.running <= running_before[q],
            "queue {} grew to {} over its limit {}",
            name,
            stats.running,
            stats.limit
        );
        running_before[q] = stats.running;
        prop_assert_eq!(
            stats.running,
            inside.0[q].load(Ordering::SeqCst),
            "every slot is held by a running handler"
        );
        let count = |status: TaskStatus| {
            tasks
                .iter()
                .filter(|t| t.spec.queue == q)
                .filter(|t| t.handle.as_ref().is_some_and(|h| h.status() == status))
                .count()
        };
        prop_assert_eq!(stats.pending, count(TaskStatus::Pending));
        prop_assert_eq!(stats.running, count(TaskStatus::Running));
        prop_assert_eq!(stats.retrying, count(TaskStatus::Retrying));
    }
    for task in tasks {
        let max = 1 + task.spec.retries.unwrap_or(0);
        prop_assert!(task.seen.attempts.load(Ordering::SeqCst) <= max);
    }
    Ok(())
}

async fn run(ops: Vec<Op>, graceful: bool) -> Result<(), TestCaseError> {
    let runner = TaskRunner::builder()
        .queue("a", QueueConfig::new().concurrency(2))
        .queue("b", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let inside = Arc::new(Inside::default());
    let alive = Arc::new(());
    let mut tasks: Vec<Tracked> = Vec::new();
    let mut running_before = [0usize; 2];

    for op in ops {
        match op {
            Op::Enqueue(spec) => {
                let seen = Arc::new(Seen::default());
                let handle = enqueue(&runner, &spec, &seen, &inside, &alive);
                tasks.push(Tracked {
                    spec,
                    handle: Some(handle),
                    seen,
                    cancelled: false,
                    cancelled_pending_at: None,
                });
            }
            Op::Cancel(pick) => {
                if tasks.is_empty() {
                    continue;
                }
                let n = tasks.len();
                let task = &mut tasks[pick % n];
                let handle = task.handle.as_ref().unwrap();
                let was_pending = handle.status() == TaskStatus::Pending;
                let attempts = task.seen.attempts.load(Ordering::SeqCst);
                if handle.cancel() {
                    task.cancelled = true;
                    if was_pending {
                        task.cancelled_pending_at = Some(attempts);
                    }
                    prop_assert!(
                        !handle.status().is_terminal() || handle.status() == TaskStatus::Cancelled
                    );
                }
            }
            Op::Resize(q, n) => runner.set_concurrency(QUEUES[q], n).unwrap(),
            Op::Advance(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
        // Let every ready task run; no timer fires.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_micros(1)).await;
        check_step(&runner, &tasks, &inside, &mut running_before)?;
    }

    // End: graceful shutdown cancels the tasks that would hang forever first.
    let shut_now = !graceful;
    if graceful {
        for task in &mut tasks {
            if natural(&task.spec).0 == Natural::Hangs && task.handle.as_ref().unwrap().cancel() {
                task.cancelled = true;
            }
        }
        runner.shutdown().await;
    } else {
        runner.shutdown_now().await;
    }

    for task in &mut tasks {
        let handle = task.handle.take().unwrap();
        let id = handle.id();
        let result = handle
            .now_or_never()
            .expect("every handle has resolved once the runner is shut down");
        let (natural, attempts) = natural(&task.spec);
        let info = runner.get_status(id).unwrap();
        let seen = task.seen.attempts.load(Ordering::SeqCst);
        prop_assert!(info.status.is_terminal());
        if let Some(at_cancel) = task.cancelled_pending_at {
            prop_assert_eq!(
                seen,
                at_cancel,
                "a task cancelled while pending never starts again"
            );
        }
        match result {
            Err(TaskError::Cancelled) => prop_assert!(task.cancelled, "{:?}", task.spec),
            Err(TaskError::Shutdown) => prop_assert!(shut_now),
            other => {
                prop_assert!(!task.cancelled, "cancel() returned true, yet {:?}", other);
                let got = match other {
                    Ok(attempt) => Natural::Ok(attempt),
                    Err(TaskError::Failed(e)) => Natural::Failed(e),
                    Err(TaskError::Panicked(_)) => Natural::Panicked,
                    Err(TaskError::TimedOut) => Natural::TimedOut,
                    _ => unreachable!(),
                };
                prop_assert_eq!(&got, &natural, "{:?}", task.spec);
                prop_assert_eq!(seen, attempts, "attempts for {:?}", task.spec);
                prop_assert_eq!(info.attempts, attempts);
            }
        }
    }
    for name in QUEUES {
        let stats = runner.queue_stats(name).unwrap();
        prop_assert_eq!((stats.pending, stats.running, stats.retrying), (0, 0, 0));
    }
    // Every handler, and every future it made, has been dropped.
    prop_assert_eq!(Arc::strong_count(&alive), 1);
    Ok(())
}

fn quiet_scripted_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&"scripted panic") {
                default(info);
            }
        }));
    });
}

proptest! {
    // A fixed count keeps CI fast; set PROPTEST_CASES for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_runner_matches_its_model(ops in prop::collection::vec(op(), 1..40), graceful in any::<bool>()) {
        quiet_scripted_panics();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(run(ops, graceful))?;
    }
}

#[test]
fn the_model_predicts_natural_outcomes() {
    let spec = |script: Vec<Step>, retries, timeout| Spec {
        queue: 0,
        priority: 0,
        script,
        retries,
        timeout,
    };
    assert_eq!(
        natural(&spec(vec![Step::Ok(10)], None, None)),
        (Natural::Ok(1), 1)
    );
    assert_eq!(
        natural(&spec(vec![Step::Fail(10), Step::Ok(10)], Some(1), None)),
        (Natural::Ok(2), 2)
    );
    assert_eq!(
        natural(&spec(vec![Step::Fail(10)], Some(2), None)),
        (Natural::Failed("fail 3".into()), 3)
    );
    assert_eq!(
        natural(&spec(vec![Step::Ok(50)], Some(1), Some(15))),
        (Natural::TimedOut, 2)
    );
    assert_eq!(
        natural(&spec(vec![Step::Panic(10)], Some(3), None)),
        (Natural::Panicked, 1)
    );
    assert_eq!(
        natural(&spec(vec![Step::Hang], Some(3), None)),
        (Natural::Hangs, 1)
    );
}
