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
//! - at the end nothing is pending or running, and every handler and its captures are freed;
//! - every task's completion callback ran exactly once, and every task got exactly one
//!   terminal event, with nothing after it.
//!
//! Programs also do what user code and the runtime can do to a runner: some handlers' futures
//! panic if dropped unfinished (on cancel, timeout or shutdown), some handlers capture a value
//! that panics when the handler is dropped, a clone of each task's context is kept and used
//! from another thread after the handler returned, and the runtime is dropped and a new one
//! made mid-stream (every task in flight then ends `Shutdown`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use proptest::prelude::*;
use taskrunner::{
    QueueConfig, RetryPolicy, Task, TaskContext, TaskError, TaskHandle, TaskId, TaskRunner,
    TaskStatus,
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
    /// The attempt's future panics if it is dropped unfinished.
    bomb: bool,
    /// The handler captures a value that panics when the handler is dropped.
    capture_bomb: bool,
    /// A cancel grace, in ms (multiples of 10, so that with timeouts ending in 5 a grace
    /// never ends as a step does). The handlers ignore their token: they run on through it.
    grace: Option<u64>,
}

#[derive(Debug, Clone)]
enum Op {
    Enqueue(Spec),
    Cancel(usize),
    Resize(usize, usize),
    Advance(u64),
    /// Another thread reports progress through every context clone kept so far.
    LateProgress,
    /// The runtime is dropped and a new one made.
    NewRuntime,
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
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        prop::option::weighted(0.3, (1..=3u64).prop_map(|n| n * 10)),
    )
        .prop_map(
            |(queue, priority, script, retries, timeout, bomb, capture_bomb, grace)| Spec {
                queue,
                priority,
                script,
                retries,
                timeout,
                bomb,
                capture_bomb,
                grace,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => spec().prop_map(Op::Enqueue),
        2 => any::<usize>().prop_map(Op::Cancel),
        1 => (0..QUEUES.len(), 1..=4usize).prop_map(|(q, n)| Op::Resize(q, n)),
        3 => (1..=60u64).prop_map(Op::Advance),
        1 => Just(Op::LateProgress),
        1 => Just(Op::NewRuntime),
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
        // A timed-out attempt that panics within its grace panics: a bug, not retried.
        let panics_in_grace = match (step, spec.timeout, spec.grace) {
            (Step::Panic(ms), Some(t), Some(g)) => timed_out && ms < t + g,
            _ => false,
        };
        if panics_in_grace {
            return (Natural::Panicked, attempt);
        }
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

/// Per-task observations made by its handler and its callbacks.
#[derive(Default)]
struct Seen {
    attempts: AtomicU32,
    /// Calls of its completion callbacks.
    finished: AtomicU32,
}

/// Panics when dropped while armed.
struct Bomb(bool);

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.0 {
            panic!("bomb");
        }
    }
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
    /// In flight when its runtime was dropped.
    runtime_dropped: bool,
}

/// What every task's handler shares with the test.
struct Shared {
    inside: Arc<Inside>,
    alive: Arc<()>,
    /// A clone of the context of every attempt that started.
    contexts: Arc<Mutex<Vec<TaskContext>>>,
}

fn enqueue(runner: &TaskRunner, spec: &Spec, seen: &Arc<Seen>, shared: &Shared) -> Handle {
    let (script, queue, bomb) = (spec.script.clone(), spec.queue, spec.bomb);
    let (inside, alive) = (Arc::clone(&shared.inside), Arc::clone(&shared.alive));
    let contexts = Arc::clone(&shared.contexts);
    let capture_bomb = Arc::new(Bomb(spec.capture_bomb));
    let seen_by_handler = Arc::clone(seen);
    let mut task = Task::new("scripted", move |ctx: TaskContext| {
        let _keep = &capture_bomb;
        seen_by_handler.attempts.fetch_add(1, Ordering::SeqCst);
        contexts.lock().unwrap().push(ctx.clone());
        let step = script[(ctx.attempt() as usize - 1).min(script.len() - 1)];
        let (inside, alive) = (Arc::clone(&inside), Arc::clone(&alive));
        async move {
            let _alive = alive;
            inside.0[queue].fetch_add(1, Ordering::SeqCst);
            let _guard = Guard(&inside.0[queue]);
            let mut bomb = Bomb(bomb);
            match step {
                Step::Ok(ms) | Step::Fail(ms) | Step::Panic(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await
                }
                Step::Hang => std::future::pending().await,
            }
            bomb.0 = false;
            match step {
                Step::Ok(_) => Ok(ctx.attempt()),
                Step::Panic(_) => panic!("scripted panic"),
                _ => Err(format!("fail {}", ctx.attempt())),
            }
        }
    })
    .queue(QUEUES[spec.queue])
    .priority(spec.priority)
    .on_complete({
        let seen = Arc::clone(seen);
        move |_| {
            seen.finished.fetch_add(1, Ordering::SeqCst);
        }
    })
    .on_error({
        let seen = Arc::clone(seen);
        move |_, _| {
            seen.finished.fetch_add(1, Ordering::SeqCst);
        }
    });
    if let Some(retries) = spec.retries {
        task = task.retry(RetryPolicy::fixed(Duration::from_millis(25)).max_retries(retries));
    }
    if let Some(ms) = spec.timeout {
        task = task.timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = spec.grace {
        task = task.cancel_grace(Duration::from_millis(ms));
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
        // A cancelled task still in its grace holds its slot, though its status says so.
        let in_grace = tasks
            .iter()
            .filter(|t| t.spec.queue == q)
            .filter_map(|t| t.handle.as_ref())
            .filter(|h| h.status() == TaskStatus::Cancelled && h.info().finished_at.is_none())
            .count();
        prop_assert_eq!(stats.pending, count(TaskStatus::Pending));
        prop_assert_eq!(stats.running, count(TaskStatus::Running) + in_grace);
        prop_assert_eq!(stats.retrying, count(TaskStatus::Retrying));
    }
    for task in tasks {
        let max = 1 + task.spec.retries.unwrap_or(0);
        prop_assert!(task.seen.attempts.load(Ordering::SeqCst) <= max);
    }
    Ok(())
}

fn new_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

fn run(ops: Vec<Op>, graceful: bool) -> Result<(), TestCaseError> {
    let mut rt = new_runtime();
    let runner = {
        let _entered = rt.enter();
        TaskRunner::builder()
            .queue("a", QueueConfig::new().concurrency(2))
            .queue("b", QueueConfig::new().concurrency(1))
            .event_capacity(1 << 16)
            .build()
            .unwrap()
    };
    let mut events = runner.subscribe();
    let shared = Shared {
        inside: Arc::new(Inside::default()),
        alive: Arc::new(()),
        contexts: Arc::new(Mutex::new(Vec::new())),
    };
    let mut tasks: Vec<Tracked> = Vec::new();
    let mut running_before = [0usize; 2];
    let mut late_progress: Option<std::thread::JoinHandle<()>> = None;

    for op in ops {
        // The previous op's progress thread ran alongside that op's settling.
        if let Some(thread) = late_progress.take() {
            thread.join().unwrap();
        }
        match op {
            Op::Enqueue(spec) => {
                let seen = Arc::new(Seen::default());
                let handle = {
                    let _entered = rt.enter();
                    enqueue(&runner, &spec, &seen, &shared)
                };
                tasks.push(Tracked {
                    spec,
                    handle: Some(handle),
                    seen,
                    cancelled: false,
                    cancelled_pending_at: None,
                    runtime_dropped: false,
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
                let _entered = rt.enter();
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
            Op::Resize(q, n) => {
                let _entered = rt.enter();
                runner.set_concurrency(QUEUES[q], n).unwrap();
            }
            Op::Advance(ms) => {
                rt.block_on(async move { tokio::time::sleep(Duration::from_millis(ms)).await })
            }
            Op::LateProgress => {
                let contexts = shared.contexts.lock().unwrap().clone();
                late_progress = Some(std::thread::spawn(move || {
                    for ctx in contexts {
                        ctx.set_progress(50.0, "late");
                    }
                }));
            }
            Op::NewRuntime => {
                for task in &mut tasks {
                    task.runtime_dropped |= !task.handle.as_ref().unwrap().status().is_terminal();
                }
                drop(std::mem::replace(&mut rt, new_runtime()));
                for task in &tasks {
                    let status = task.handle.as_ref().unwrap().status();
                    prop_assert!(status.is_terminal(), "{:?} after its runtime went", status);
                }
            }
        }
        // Let every ready task run; no timer fires.
        rt.block_on(async {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_micros(1)).await;
        });
        check_step(&runner, &tasks, &shared.inside, &mut running_before)?;
    }
    if let Some(thread) = late_progress.take() {
        thread.join().unwrap();
    }

    // End: graceful shutdown cancels the tasks that would hang forever first.
    let shut_now = !graceful;
    let ended = rt.block_on(async {
        let end = if graceful {
            for task in &mut tasks {
                if natural(&task.spec).0 == Natural::Hangs && task.handle.as_ref().unwrap().cancel()
                {
                    task.cancelled = true;
                }
            }
            runner.shutdown().boxed()
        } else {
            runner.shutdown_now().boxed()
        };
        // Every script ends within seconds of paused time: an hour means a leaked task.
        tokio::time::timeout(Duration::from_secs(3600), end).await
    });
    prop_assert!(ended.is_ok(), "shutdown hung: a task or a slot leaked");

    let mut ids = Vec::new();
    for task in &mut tasks {
        let handle = task.handle.take().unwrap();
        let id = handle.id();
        ids.push(id);
        let result = handle
            .now_or_never()
            .expect("every handle has resolved once the runner is shut down");
        let (natural, attempts) = natural(&task.spec);
        let info = runner.get_status(id).unwrap();
        let seen = task.seen.attempts.load(Ordering::SeqCst);
        prop_assert!(info.status.is_terminal());
        prop_assert_eq!(
            task.seen.finished.load(Ordering::SeqCst),
            1,
            "callbacks ran once"
        );
        if let Some(at_cancel) = task.cancelled_pending_at {
            prop_assert_eq!(
                seen,
                at_cancel,
                "a task cancelled while pending never starts again"
            );
        }
        match result {
            Err(TaskError::Cancelled) => prop_assert!(task.cancelled, "{:?}", task.spec),
            Err(TaskError::Shutdown) => prop_assert!(shut_now || task.runtime_dropped),
            other => {
                prop_assert!(!task.cancelled, "cancel() returned true, yet {:?}", other);
                prop_assert!(
                    !task.runtime_dropped,
                    "in flight as its runtime went, yet {:?}",
                    other
                );
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
    prop_assert_eq!(Arc::strong_count(&shared.alive), 1);

    // Late progress reports are ignored: every task's terminal event is its last.
    drop(runner);
    let mut by_task: HashMap<TaskId, Vec<bool>> = HashMap::new();
    let all = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(3600),
            events.by_ref().collect::<Vec<_>>(),
        )
        .await
    });
    prop_assert!(all.is_ok(), "the event stream did not end with the runner");
    let all = all.unwrap();
    for event in all {
        let event = event.expect("no subscriber lag at this capacity");
        by_task
            .entry(event.id)
            .or_default()
            .push(event.kind.is_terminal());
    }
    for id in ids {
        let terminal = by_task.remove(&id).unwrap_or_default();
        prop_assert_eq!(terminal.iter().filter(|t| **t).count(), 1, "task {}", id);
        prop_assert_eq!(
            terminal.last(),
            Some(&true),
            "task {}: nothing after its end",
            id
        );
    }
    Ok(())
}

fn quiet_scripted_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload().downcast_ref::<&str>();
            if payload != Some(&"scripted panic") && payload != Some(&"bomb") {
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
        run(ops, graceful)?;
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
        bomb: false,
        capture_bomb: false,
        grace: None,
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
    let graced = |script, grace| Spec {
        grace: Some(grace),
        ..spec(script, Some(1), Some(15))
    };
    assert_eq!(
        natural(&graced(vec![Step::Panic(20)], 10)),
        (Natural::Panicked, 1),
        "panics within the grace of its timeout"
    );
    assert_eq!(
        natural(&graced(vec![Step::Panic(30)], 10)),
        (Natural::TimedOut, 2),
        "dropped at the grace's end before it panics"
    );
}
