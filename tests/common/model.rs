//! The harness the two model tests of the whole runner share (`model.rs`, `model_flow.rs`):
//! scripted attempts, what a script comes to if nothing stops it, the per-task record, and the
//! checks every program makes after each step and after shutdown.
//!
//! Each model keeps its own ops, its own runner and handlers, and the checks only it makes;
//! both include this file with `#[path = "common/model.rs"] mod model_harness;`.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use futures::FutureExt;
use proptest::prelude::*;
use taskrunner::{
    QueueStats, RetryPolicy, Task, TaskError, TaskHandle, TaskId, TaskRunner, TaskStatus,
};

/// What one attempt of a scripted task does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Step {
    Ok(u64),
    Fail(u64),
    Panic(u64),
    Hang,
}

// Step durations are multiples of 10 ms and timeouts end in 5, so an attempt's end never
// ties with its timeout.
pub(crate) fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1..=5u64).prop_map(|n| Step::Ok(n * 10)),
        3 => (1..=5u64).prop_map(|n| Step::Fail(n * 10)),
        1 => (1..=5u64).prop_map(|n| Step::Panic(n * 10)),
        1 => Just(Step::Hang),
    ]
}

impl Step {
    /// Waits as long as the step takes: forever for `Hang`.
    pub(crate) async fn wait(self) {
        match self {
            Step::Ok(ms) | Step::Fail(ms) | Step::Panic(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await
            }
            Step::Hang => std::future::pending().await,
        }
    }

    /// How attempt `attempt` ends once the step has waited: its number, an error naming it,
    /// or a panic.
    pub(crate) fn end(self, attempt: u32) -> Result<u32, String> {
        match self {
            Step::Ok(_) => Ok(attempt),
            Step::Panic(_) => panic!("scripted panic"),
            _ => Err(format!("fail {attempt}")),
        }
    }
}

/// Gives a scripted task its retries (a fixed 25 ms backoff) and timeout (ms).
pub(crate) fn limits<F, P>(
    mut task: Task<F, P>,
    retries: Option<u32>,
    timeout: Option<u64>,
) -> Task<F, P> {
    if let Some(retries) = retries {
        task = task.retry(RetryPolicy::fixed(Duration::from_millis(25)).max_retries(retries));
    }
    if let Some(ms) = timeout {
        task = task.timeout(Duration::from_millis(ms));
    }
    task
}

/// The step attempt `attempt` (from 1) runs: the script's last step repeats.
pub(crate) fn step_of(script: &[Step], attempt: u32) -> Step {
    script[(attempt as usize - 1).min(script.len() - 1)]
}

/// What a task comes to if nothing stops it: the outcome and how many attempts it takes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Natural {
    Ok(u32),
    Failed(String),
    Panicked,
    TimedOut,
    /// Hangs with no timeout: only a cancel or shutdown_now ends it.
    Hangs,
}

/// The natural outcome of a script run with these retries, timeout and cancel grace (all ms).
pub(crate) fn natural(
    script: &[Step],
    retries: Option<u32>,
    timeout: Option<u64>,
    grace: Option<u64>,
) -> (Natural, u32) {
    let retries = retries.unwrap_or(0);
    let mut attempt = 1;
    loop {
        let step = step_of(script, attempt);
        let timed_out = match (step, timeout) {
            (Step::Hang, Some(_)) => true,
            (Step::Hang, None) => return (Natural::Hangs, attempt),
            (Step::Ok(ms) | Step::Fail(ms) | Step::Panic(ms), Some(t)) => ms > t,
            _ => false,
        };
        // A timed-out attempt that panics within its grace panics: a bug, not retried.
        let panics_in_grace = match (step, timeout, grace) {
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

/// A model's task spec, as the shared checks see it.
pub(crate) trait Scripted: Debug {
    /// Its queue, an index into the model's queues.
    fn queue(&self) -> usize;
    fn retries(&self) -> Option<u32>;
    /// See [`natural`].
    fn natural(&self) -> (Natural, u32);
}

/// Per-task observations made by its handler.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) attempts: AtomicU32,
}

/// Leaves a count when dropped, so a cancelled (dropped) handler leaves too.
pub(crate) struct Guard<'a>(pub(crate) &'a AtomicUsize);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) type Handle = TaskHandle<u32, String>;

/// A task enqueued by the program, and what the model knows of it; `more` is what only one
/// model tracks.
pub(crate) struct Tracked<S, M = ()> {
    pub(crate) spec: S,
    pub(crate) handle: Option<Handle>,
    pub(crate) seen: Arc<Seen>,
    /// `cancel()` returned true.
    pub(crate) cancelled: bool,
    /// Attempts started when it was cancelled while pending.
    pub(crate) cancelled_pending_at: Option<u32>,
    #[allow(dead_code, reason = "`model_flow.rs` tracks nothing more: `()`")]
    pub(crate) more: M,
}

impl<S, M> Tracked<S, M> {
    pub(crate) fn new(spec: S, handle: Handle, seen: Arc<Seen>, more: M) -> Self {
        Tracked {
            spec,
            handle: Some(handle),
            seen,
            cancelled: false,
            cancelled_pending_at: None,
            more,
        }
    }

    pub(crate) fn handle(&self) -> &Handle {
        self.handle.as_ref().expect("taken only at the end")
    }
}

/// Cancels the task `pick` lands on (there must be one); `pending` says which statuses count
/// as not yet started.
pub(crate) fn cancel<S, M>(
    tasks: &mut [Tracked<S, M>],
    pick: usize,
    pending: impl Fn(TaskStatus) -> bool,
) -> Result<(), TestCaseError> {
    let n = tasks.len();
    let task = &mut tasks[pick % n];
    let handle = task.handle.as_ref().unwrap();
    let was_pending = pending(handle.status());
    let attempts = task.seen.attempts.load(Ordering::SeqCst);
    if handle.cancel() {
        task.cancelled = true;
        if was_pending {
            task.cancelled_pending_at = Some(attempts);
        }
        prop_assert!(!handle.status().is_terminal() || handle.status() == TaskStatus::Cancelled);
    }
    Ok(())
}

/// How many of queue `q`'s tasks are in `status`.
pub(crate) fn count<S: Scripted, M>(
    tasks: &[Tracked<S, M>],
    q: usize,
    status: TaskStatus,
) -> usize {
    tasks
        .iter()
        .filter(|t| t.spec.queue() == q)
        .filter(|t| t.handle.as_ref().is_some_and(|h| h.status() == status))
        .count()
}

/// After a step, the checks of queue `q` both models make: running ≤ limit (after a lowered
/// limit, running only shrinks), every slot held by one of the `inside` handlers running,
/// pending and retrying as the statuses say. Returns the stats for the model's own checks.
pub(crate) fn check_queue<S: Scripted, M>(
    runner: &TaskRunner,
    tasks: &[Tracked<S, M>],
    q: usize,
    name: &str,
    inside: &AtomicUsize,
    running_before: &mut usize,
) -> Result<QueueStats, TestCaseError> {
    let stats = runner.queue_stats(name).unwrap();
    prop_assert!(
        stats.running <= stats.limit || stats.running <= *running_before,
        "queue {} grew to {} over its limit {}",
        name,
        stats.running,
        stats.limit
    );
    *running_before = stats.running;
    prop_assert_eq!(
        stats.running,
        inside.load(Ordering::SeqCst),
        "every slot is held by a running handler"
    );
    prop_assert_eq!(stats.pending, count(tasks, q, TaskStatus::Pending));
    prop_assert_eq!(stats.retrying, count(tasks, q, TaskStatus::Retrying));
    Ok(stats)
}

/// Attempts ≤ 1 + max_retries, for every task.
pub(crate) fn check_attempts<S: Scripted, M>(tasks: &[Tracked<S, M>]) -> Result<(), TestCaseError> {
    for task in tasks {
        let max = 1 + task.spec.retries().unwrap_or(0);
        prop_assert!(task.seen.attempts.load(Ordering::SeqCst) <= max);
    }
    Ok(())
}

/// Before a graceful shutdown: cancels the tasks that would hang forever.
pub(crate) fn cancel_hanging<S: Scripted, M>(tasks: &mut [Tracked<S, M>]) {
    for task in tasks {
        if task.spec.natural().0 == Natural::Hangs && task.handle().cancel() {
            task.cancelled = true;
        }
    }
}

/// After shutdown: takes the task's handle, which must have resolved, and checks its outcome
/// against the model: the natural outcome (with its attempts), `Cancelled` when `cancel`
/// returned true, `Shutdown` for what `shutdown_now` (when `shut_now`) caught or for a task in
/// flight when its runtime was dropped (`runtime_dropped`), which has no other outcome. A task
/// cancelled while pending never started again. Returns the task's id.
pub(crate) fn check_outcome<S: Scripted, M>(
    runner: &TaskRunner,
    task: &mut Tracked<S, M>,
    shut_now: bool,
    runtime_dropped: bool,
) -> Result<TaskId, TestCaseError> {
    let handle = task.handle.take().unwrap();
    let id = handle.id();
    let result = handle
        .now_or_never()
        .expect("every handle has resolved once the runner is shut down");
    let (natural, attempts) = task.spec.natural();
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
        Err(TaskError::Shutdown) => prop_assert!(shut_now || runtime_dropped),
        other => {
            prop_assert!(!task.cancelled, "cancel() returned true, yet {:?}", other);
            prop_assert!(
                !runtime_dropped,
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
    Ok(id)
}

/// A current-thread runtime on a paused clock.
pub(crate) fn new_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Lets every ready task run; no timer fires.
pub(crate) async fn settle() {
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_micros(1)).await;
}

/// Keeps the scripted panics (and panicking drops, "bomb") out of the test output.
pub(crate) fn quiet_scripted_panics() {
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

/// A fixed count keeps CI fast; set PROPTEST_CASES for a longer hunt.
pub(crate) fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        ..ProptestConfig::default()
    }
}

#[test]
fn the_model_predicts_natural_outcomes() {
    assert_eq!(
        natural(&[Step::Ok(10)], None, None, None),
        (Natural::Ok(1), 1)
    );
    assert_eq!(
        natural(&[Step::Fail(10), Step::Ok(10)], Some(1), None, None),
        (Natural::Ok(2), 2)
    );
    assert_eq!(
        natural(&[Step::Fail(10)], Some(2), None, None),
        (Natural::Failed("fail 3".into()), 3)
    );
    assert_eq!(
        natural(&[Step::Ok(50)], Some(1), Some(15), None),
        (Natural::TimedOut, 2)
    );
    assert_eq!(
        natural(&[Step::Panic(10)], Some(3), None, None),
        (Natural::Panicked, 1)
    );
    assert_eq!(
        natural(&[Step::Hang], Some(3), None, None),
        (Natural::Hangs, 1)
    );
    assert_eq!(
        natural(&[Step::Panic(20)], Some(1), Some(15), Some(10)),
        (Natural::Panicked, 1),
        "panics within the grace of its timeout"
    );
    assert_eq!(
        natural(&[Step::Panic(30)], Some(1), Some(15), Some(10)),
        (Natural::TimedOut, 2),
        "dropped at the grace's end before it panics"
    );
}
