//! The model-based test with flow control in the mix (keys, rate limits, pauses, delays); `model.rs` holds the one with panicking drops, foreign ctx clones, dropped runtimes and cancel graces.
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
//!
//! Flow control is in the mix: queue `c` has `key_concurrency(1)` and a rate limit of 3
//! starts per 100 ms, tasks may carry a concurrency key (ignored on `a` and `b`) and a start
//! delay, and any queue may be paused and resumed. On top of the above:
//!
//! - a key never runs more than one handler at once;
//! - no window of 100 ms holds more than 3 starts of queue `c` (retries included);
//! - a paused queue starts nothing; `queue_stats` counts delayed tasks;
//! - a task cancelled while delayed never starts.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use futures::FutureExt;
use proptest::prelude::*;
use taskrunner::{
    QueueConfig, RateLimit, RetryPolicy, Task, TaskContext, TaskError, TaskHandle, TaskRunner,
    TaskStatus,
};

const QUEUES: [&str; 3] = ["a", "b", "c"];
const KEYS: usize = 3;
/// Queue `c`'s rate limit: at most this many starts in any window of `RATE_PER`.
const RATE_N: usize = 3;
const RATE_PER: Duration = Duration::from_millis(100);

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
    key: Option<usize>,
    delay: Option<u64>,
}

#[derive(Debug, Clone)]
enum Op {
    Enqueue(Spec),
    Cancel(usize),
    Resize(usize, usize),
    Advance(u64),
    Pause(usize),
    Resume(usize),
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
        prop::option::of(0..KEYS),
        prop::option::weighted(0.2, 1..=50u64),
    )
        .prop_map(
            |(queue, priority, script, retries, timeout, key, delay)| Spec {
                queue,
                priority,
                script,
                retries,
                timeout,
                key,
                delay,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => spec().prop_map(Op::Enqueue),
        2 => any::<usize>().prop_map(Op::Cancel),
        1 => (0..QUEUES.len(), 1..=4usize).prop_map(|(q, n)| Op::Resize(q, n)),
        3 => (1..=60u64).prop_map(Op::Advance),
        1 => (0..QUEUES.len()).prop_map(Op::Pause),
        1 => (0..QUEUES.len()).prop_map(Op::Resume),
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

/// Handlers inside, per queue; per key in queue `c` (and the most at once); attempts started
/// per queue; when queue `c`'s attempts started.
#[derive(Default)]
struct Inside {
    queues: [AtomicUsize; 3],
    keys: [AtomicUsize; KEYS],
    key_max: AtomicUsize,
    started: [AtomicUsize; 3],
    c_starts: std::sync::Mutex<Vec<tokio::time::Instant>>,
}

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
    // Queue `c` limits keys; elsewhere a key is ignored.
    let limited_key = spec.key.filter(|_| queue == 2);
    let mut task = Task::new("scripted", move |ctx: TaskContext| {
        seen.attempts.fetch_add(1, Ordering::SeqCst);
        inside.started[queue].fetch_add(1, Ordering::SeqCst);
        if queue == 2 {
            inside
                .c_starts
                .lock()
                .unwrap()
                .push(tokio::time::Instant::now());
        }
        let step = script[(ctx.attempt() as usize - 1).min(script.len() - 1)];
        let (inside, alive) = (Arc::clone(&inside), Arc::clone(&alive));
        async move {
            let _alive = alive;
            inside.queues[queue].fetch_add(1, Ordering::SeqCst);
            let _guard = Guard(&inside.queues[queue]);
            let _key_guard = limited_key.map(|k| {
                let now = inside.keys[k].fetch_add(1, Ordering::SeqCst) + 1;
                inside.key_max.fetch_max(now, Ordering::SeqCst);
                Guard(&inside.keys[k])
            });
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
    if let Some(key) = spec.key {
        task = task.concurrency_key(format!("key{key}"));
    }
    if let Some(ms) = spec.delay {
        task = task.delay(Duration::from_millis(ms));
    }
    runner.enqueue_task(task).expect("enqueue")
}

fn check_step(
    runner: &TaskRunner,
    tasks: &[Tracked],
    inside: &Inside,
    running_before: &mut [usize; 3],
    paused_at: &[Option<usize>; 3],
) -> Result<(), TestCaseError> {
    prop_assert!(
        inside.key_max.load(Ordering::SeqCst) <= 1,
        "a key ran twice at once"
    );
    for (q, paused) in paused_at.iter().enumerate() {
        if let Some(started) = paused {
            prop_assert_eq!(
                inside.started[q].load(Ordering::SeqCst),
                *started,
                "paused queue {} started a task",
                QUEUES[q]
            );
            prop_assert!(runner.queue_stats(QUEUES[q]).unwrap().paused);
        }
    }
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
            inside.queues[q].load(Ordering::SeqCst),
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
        prop_assert_eq!(stats.delayed, count(TaskStatus::Delayed));
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
        .queue(
            "c",
            QueueConfig::new()
                .concurrency(3)
                .key_concurrency(1)
                .rate_limit(RateLimit::new(RATE_N as u32, RATE_PER)),
        )
        .build()
        .unwrap();
    let inside = Arc::new(Inside::default());
    let alive = Arc::new(());
    let mut tasks: Vec<Tracked> = Vec::new();
    let mut running_before = [0usize; 3];
    // Attempts a queue had started when it was paused, while it is.
    let mut paused_at: [Option<usize>; 3] = [None; 3];

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
                let was_pending =
                    matches!(handle.status(), TaskStatus::Pending | TaskStatus::Delayed);
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
            Op::Pause(q) => {
                runner.pause_queue(QUEUES[q]).unwrap();
                paused_at[q].get_or_insert(inside.started[q].load(Ordering::SeqCst));
            }
            Op::Resume(q) => {
                runner.resume_queue(QUEUES[q]).unwrap();
                paused_at[q] = None;
            }
        }
        // Let every ready task run; no timer fires.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_micros(1)).await;
        check_step(&runner, &tasks, &inside, &mut running_before, &paused_at)?;
    }
    // A paused queue would hold a graceful shutdown forever.
    for name in QUEUES {
        runner.resume_queue(name).unwrap();
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
        prop_assert_eq!(
            (stats.pending, stats.running, stats.retrying, stats.delayed),
            (0, 0, 0, 0)
        );
    }
    // No window of RATE_PER holds more than RATE_N starts of queue `c`.
    let starts = inside.c_starts.lock().unwrap().clone();
    for (i, &s) in starts.iter().enumerate() {
        let inside_window = starts[i..].iter().filter(|&&t| t < s + RATE_PER).count();
        prop_assert!(
            inside_window <= RATE_N,
            "{} starts within {:?}",
            inside_window,
            RATE_PER
        );
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
        key: None,
        delay: None,
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
