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

#[path = "common/model.rs"]
mod model_harness;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use model_harness::{
    cancel_hanging, check_attempts, check_outcome, check_queue, count, limits, natural,
    new_runtime, quiet_scripted_panics, settle, step, step_of, Guard, Natural, Scripted, Seen,
    Step,
};
use proptest::prelude::*;
use taskrunner::{QueueConfig, RateLimit, Task, TaskContext, TaskRunner, TaskStatus};

const QUEUES: [&str; 3] = ["a", "b", "c"];
const KEYS: usize = 3;
/// Queue `c`'s rate limit: at most this many starts in any window of `RATE_PER`.
const RATE_N: usize = 3;
const RATE_PER: Duration = Duration::from_millis(100);

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

impl Scripted for Spec {
    fn queue(&self) -> usize {
        self.queue
    }
    fn retries(&self) -> Option<u32> {
        self.retries
    }
    fn natural(&self) -> (Natural, u32) {
        natural(&self.script, self.retries, self.timeout, None)
    }
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

type Tracked = model_harness::Tracked<Spec>;

fn enqueue(runner: &TaskRunner, spec: Spec, inside: &Arc<Inside>, alive: &Arc<()>) -> Tracked {
    let (script, queue) = (spec.script.clone(), spec.queue);
    let seen = Arc::new(Seen::default());
    let (seen_by_handler, inside, alive) =
        (Arc::clone(&seen), Arc::clone(inside), Arc::clone(alive));
    // Queue `c` limits keys; elsewhere a key is ignored.
    let limited_key = spec.key.filter(|_| queue == 2);
    let mut task = Task::new("scripted", move |ctx: TaskContext| {
        seen_by_handler.attempts.fetch_add(1, Ordering::SeqCst);
        inside.started[queue].fetch_add(1, Ordering::SeqCst);
        if queue == 2 {
            inside
                .c_starts
                .lock()
                .unwrap()
                .push(tokio::time::Instant::now());
        }
        let step = step_of(&script, ctx.attempt());
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
            step.wait().await;
            step.end(ctx.attempt())
        }
    })
    .queue(QUEUES[spec.queue])
    .priority(spec.priority);
    task = limits(task, spec.retries, spec.timeout);
    if let Some(key) = spec.key {
        task = task.concurrency_key(format!("key{key}"));
    }
    if let Some(ms) = spec.delay {
        task = task.delay(Duration::from_millis(ms));
    }
    let handle = runner.enqueue_task(task).expect("enqueue");
    Tracked::new(spec, handle, seen, ())
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
        let stats = check_queue(
            runner,
            tasks,
            q,
            name,
            &inside.queues[q],
            &mut running_before[q],
        )?;
        prop_assert_eq!(stats.running, count(tasks, q, TaskStatus::Running));
        prop_assert_eq!(stats.delayed, count(tasks, q, TaskStatus::Delayed));
    }
    check_attempts(tasks)
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
            Op::Enqueue(spec) => tasks.push(enqueue(&runner, spec, &inside, &alive)),
            Op::Cancel(pick) => {
                if tasks.is_empty() {
                    continue;
                }
                model_harness::cancel(&mut tasks, pick, |s| {
                    matches!(s, TaskStatus::Pending | TaskStatus::Delayed)
                })?;
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
        settle().await;
        check_step(&runner, &tasks, &inside, &mut running_before, &paused_at)?;
    }
    // A paused queue would hold a graceful shutdown forever.
    for name in QUEUES {
        runner.resume_queue(name).unwrap();
    }

    // End: graceful shutdown cancels the tasks that would hang forever first.
    let shut_now = !graceful;
    if graceful {
        cancel_hanging(&mut tasks);
        runner.shutdown().await;
    } else {
        runner.shutdown_now().await;
    }

    for task in &mut tasks {
        check_outcome(&runner, task, shut_now, false)?;
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

proptest! {
    #![proptest_config(model_harness::config())]

    #[test]
    fn the_runner_matches_its_model(ops in prop::collection::vec(op(), 1..40), graceful in any::<bool>()) {
        quiet_scripted_panics();
        new_runtime().block_on(run(ops, graceful))?;
    }
}
