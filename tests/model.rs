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

#[path = "common/model.rs"]
mod model_harness;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use model_harness::{
    cancel_hanging, check_attempts, check_outcome, check_queue, count, limits, natural,
    new_runtime, quiet_scripted_panics, settle, step, step_of, Guard, Natural, Scripted, Seen,
    Step,
};
use proptest::prelude::*;
use taskrunner::{QueueConfig, Task, TaskContext, TaskId, TaskRunner, TaskStatus};

const QUEUES: [&str; 2] = ["a", "b"];

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

impl Scripted for Spec {
    fn queue(&self) -> usize {
        self.queue
    }
    fn retries(&self) -> Option<u32> {
        self.retries
    }
    fn natural(&self) -> (Natural, u32) {
        natural(&self.script, self.retries, self.timeout, self.grace)
    }
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

/// What only this model tracks of a task.
#[derive(Default)]
struct More {
    /// Calls of its completion callbacks.
    finished: Arc<AtomicU32>,
    /// In flight when its runtime was dropped.
    runtime_dropped: bool,
}

type Tracked = model_harness::Tracked<Spec, More>;

/// What every task's handler shares with the test.
struct Shared {
    inside: Arc<Inside>,
    alive: Arc<()>,
    /// A clone of the context of every attempt that started.
    contexts: Arc<Mutex<Vec<TaskContext>>>,
}

fn enqueue(runner: &TaskRunner, spec: Spec, shared: &Shared) -> Tracked {
    let (script, queue, bomb) = (spec.script.clone(), spec.queue, spec.bomb);
    let (inside, alive) = (Arc::clone(&shared.inside), Arc::clone(&shared.alive));
    let contexts = Arc::clone(&shared.contexts);
    let capture_bomb = Arc::new(Bomb(spec.capture_bomb));
    let (seen, more) = (Arc::new(Seen::default()), More::default());
    let seen_by_handler = Arc::clone(&seen);
    let mut task = Task::new("scripted", move |ctx: TaskContext| {
        let _keep = &capture_bomb;
        seen_by_handler.attempts.fetch_add(1, Ordering::SeqCst);
        contexts.lock().unwrap().push(ctx.clone());
        let step = step_of(&script, ctx.attempt());
        let (inside, alive) = (Arc::clone(&inside), Arc::clone(&alive));
        async move {
            let _alive = alive;
            inside.0[queue].fetch_add(1, Ordering::SeqCst);
            let _guard = Guard(&inside.0[queue]);
            let mut bomb = Bomb(bomb);
            step.wait().await;
            bomb.0 = false;
            step.end(ctx.attempt())
        }
    })
    .queue(QUEUES[spec.queue])
    .priority(spec.priority)
    .on_complete({
        let finished = Arc::clone(&more.finished);
        move |_| {
            finished.fetch_add(1, Ordering::SeqCst);
        }
    })
    .on_error({
        let finished = Arc::clone(&more.finished);
        move |_, _| {
            finished.fetch_add(1, Ordering::SeqCst);
        }
    });
    task = limits(task, spec.retries, spec.timeout);
    if let Some(ms) = spec.grace {
        task = task.cancel_grace(Duration::from_millis(ms));
    }
    let handle = runner.enqueue_task(task).expect("enqueue");
    Tracked::new(spec, handle, seen, more)
}

fn check_step(
    runner: &TaskRunner,
    tasks: &[Tracked],
    inside: &Inside,
    running_before: &mut [usize; 2],
) -> Result<(), TestCaseError> {
    for (q, name) in QUEUES.iter().enumerate() {
        let stats = check_queue(runner, tasks, q, name, &inside.0[q], &mut running_before[q])?;
        // A cancelled task still in its grace holds its slot, though its status says so.
        let in_grace = tasks
            .iter()
            .filter(|t| t.spec.queue == q)
            .filter_map(|t| t.handle.as_ref())
            .filter(|h| h.status() == TaskStatus::Cancelled && h.info().finished_at.is_none())
            .count();
        prop_assert_eq!(
            stats.running,
            count(tasks, q, TaskStatus::Running) + in_grace
        );
    }
    check_attempts(tasks)
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
                let _entered = rt.enter();
                tasks.push(enqueue(&runner, spec, &shared));
            }
            Op::Cancel(pick) => {
                if tasks.is_empty() {
                    continue;
                }
                let _entered = rt.enter();
                model_harness::cancel(&mut tasks, pick, |s| s == TaskStatus::Pending)?;
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
                    task.more.runtime_dropped |= !task.handle().status().is_terminal();
                }
                drop(std::mem::replace(&mut rt, new_runtime()));
                for task in &tasks {
                    let status = task.handle().status();
                    prop_assert!(status.is_terminal(), "{:?} after its runtime went", status);
                }
            }
        }
        rt.block_on(settle());
        check_step(&runner, &tasks, &shared.inside, &mut running_before)?;
    }
    if let Some(thread) = late_progress.take() {
        thread.join().unwrap();
    }

    // End: graceful shutdown cancels the tasks that would hang forever first.
    let shut_now = !graceful;
    let ended = rt.block_on(async {
        let end = if graceful {
            cancel_hanging(&mut tasks);
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
        prop_assert_eq!(
            task.more.finished.load(Ordering::SeqCst),
            1,
            "callbacks ran once"
        );
        let runtime_dropped = task.more.runtime_dropped;
        ids.push(check_outcome(&runner, task, shut_now, runtime_dropped)?);
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

proptest! {
    #![proptest_config(model_harness::config())]

    #[test]
    fn the_runner_matches_its_model(ops in prop::collection::vec(op(), 1..40), graceful in any::<bool>()) {
        quiet_scripted_panics();
        run(ops, graceful)?;
    }
}
