//! Cancel: pending tasks never run, running ones stop at once, retrying ones stop.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{settle, Probe};
use taskrunner::{QueueConfig, RetryPolicy, Task, TaskContext, TaskError, TaskRunner, TaskStatus};
use tokio::time::Instant;

fn one_slot() -> TaskRunner {
    TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap()
}

/// A task that runs until cancelled, ignoring its abort token.
fn forever(
    name: &str,
) -> Task<impl Fn(TaskContext) -> std::future::Pending<Result<(), String>> + Send + Sync> {
    Task::new(name, |_: TaskContext| std::future::pending()).queue("one")
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_pending_task_never_runs() {
    let runner = one_slot();
    let blocker = runner.enqueue_task(forever("blocker")).unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&ran);
    let pending = runner
        .enqueue_task(
            Task::new("never", move |_: TaskContext| {
                r.store(true, Ordering::SeqCst);
                async { Ok::<_, String>(()) }
            })
            .queue("one"),
        )
        .unwrap();
    assert_eq!(pending.status(), TaskStatus::Pending);
    assert!(pending.cancel());
    // Out of the queue at once.
    assert_eq!(pending.status(), TaskStatus::Cancelled);
    assert_eq!(runner.queue_stats("one").unwrap().pending, 0);
    assert!(
        !pending.cancel(),
        "a finished task cannot be cancelled again"
    );

    assert!(blocker.cancel());
    assert!(matches!(pending.await, Err(TaskError::Cancelled)));
    assert!(matches!(blocker.await, Err(TaskError::Cancelled)));
    runner.wait_idle().await;
    assert!(!ran.load(Ordering::SeqCst));
    let info = runner
        .list_tasks()
        .into_iter()
        .find(|t| t.name == "never")
        .unwrap();
    assert_eq!(
        (info.status, info.attempts, info.started_at),
        (TaskStatus::Cancelled, 0, None)
    );
}

#[tokio::test(start_paused = true)]
async fn a_running_task_that_ignores_its_token_stops_at_once_and_frees_its_slot() {
    let runner = one_slot();
    let probe = Probe::new();
    let p = Arc::clone(&probe);
    let stubborn = runner
        .enqueue_task(
            Task::new("stubborn", move |_: TaskContext| {
                let inside = p.enter("stubborn");
                async move {
                    let _inside = inside;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok::<_, String>(())
                }
            })
            .queue("one"),
        )
        .unwrap();
    let next = runner
        .enqueue_task(
            Task::new("next", |_: TaskContext| async {
                Ok::<_, String>(Instant::now())
            })
            .queue("one"),
        )
        .unwrap();
    settle().await;
    assert_eq!(probe.inside(), 1);

    let cancelled_at = Instant::now();
    assert!(runner.cancel(stubborn.id()));
    assert!(matches!(stubborn.await, Err(TaskError::Cancelled)));
    assert_eq!(probe.inside(), 0, "the handler's future was dropped");
    let next_ran_at = next.await.unwrap();
    assert!(
        next_ran_at - cancelled_at < Duration::from_millis(10),
        "the slot passed on at once"
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_fires_the_abort_token() {
    let runner = one_slot();
    let saw_abort = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&saw_abort);
    let handle = runner
        .enqueue_task(
            Task::new("watcher", move |ctx: TaskContext| {
                let token = ctx.abort_token().clone();
                let s = Arc::clone(&s);
                // Work handed elsewhere stops through the token.
                tokio::spawn(async move {
                    token.cancelled().await;
                    s.store(true, Ordering::SeqCst);
                });
                std::future::pending::<Result<(), String>>()
            })
            .queue("one"),
        )
        .unwrap();
    settle().await;
    assert!(handle.cancel());
    assert!(matches!(handle.await, Err(TaskError::Cancelled)));
    settle().await;
    assert!(saw_abort.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn a_token_first_taken_after_cancel_is_already_cancelled() {
    let runner = one_slot();
    let (tx, rx) = std::sync::mpsc::channel::<TaskContext>();
    let handle = runner
        .enqueue_task(
            Task::new("late", move |ctx: TaskContext| {
                tx.send(ctx).unwrap();
                std::future::pending::<Result<(), String>>()
            })
            .queue("one"),
        )
        .unwrap();
    settle().await;
    let ctx = rx.try_recv().unwrap();
    assert!(handle.cancel());
    // The token is made lazily; made after the cancel, it must still read cancelled.
    assert!(ctx.abort_token().is_cancelled());
    assert!(ctx.is_cancelled());
    assert!(matches!(handle.await, Err(TaskError::Cancelled)));
}

#[tokio::test(start_paused = true)]
async fn a_task_in_backoff_stops_when_cancelled() {
    let runner = one_slot();
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = Arc::clone(&attempts);
    let handle = runner
        .enqueue_task(
            Task::new("flaky", move |_: TaskContext| {
                a.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>("down") }
            })
            .queue("one")
            .retry(RetryPolicy::fixed(Duration::from_secs(3600))),
        )
        .unwrap();
    settle().await;
    assert_eq!(handle.status(), TaskStatus::Retrying);
    assert_eq!(runner.queue_stats("one").unwrap().retrying, 1);

    let began = Instant::now();
    assert!(handle.cancel());
    assert_eq!(handle.status(), TaskStatus::Cancelled);
    assert_eq!(runner.queue_stats("one").unwrap().retrying, 0);
    assert!(matches!(handle.await, Err(TaskError::Cancelled)));
    runner.wait_idle().await;
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "did not wait out the backoff"
    );
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "never retried");
}

#[tokio::test(start_paused = true)]
async fn cancel_returns_false_for_finished_and_unknown_tasks() {
    let runner = TaskRunner::new();
    let handle = runner
        .enqueue_task(Task::new("quick", |_: TaskContext| async {
            Ok::<_, String>(1)
        }))
        .unwrap();
    let id = handle.id();
    assert_eq!(handle.await.unwrap(), 1);
    assert!(!runner.cancel(id));
    assert_eq!(runner.get_status(id).unwrap().status, TaskStatus::Completed);

    let other = TaskRunner::new();
    assert!(!other.cancel(id), "unknown to this runner");
}

#[tokio::test(start_paused = true)]
async fn cancelling_most_of_a_backlog_keeps_the_rest_in_order() {
    let runner = one_slot();
    let blocker = runner.enqueue_task(forever("blocker")).unwrap();
    let probe = Probe::new();
    let handles: Vec<_> = (0..1_000)
        .map(|i| {
            let p = Arc::clone(&probe);
            runner
                .enqueue_task(
                    Task::new(i.to_string(), move |_: TaskContext| {
                        drop(p.enter(i.to_string()));
                        async { Ok::<_, String>(()) }
                    })
                    .queue("one")
                    .priority(i % 7),
                )
                .unwrap()
        })
        .collect();
    let mut kept = Vec::new();
    for (i, handle) in handles.iter().enumerate() {
        if i % 10 == 0 {
            kept.push(i as i32);
        } else {
            assert!(handle.cancel());
        }
    }
    assert_eq!(runner.queue_stats("one").unwrap().pending, kept.len());
    blocker.cancel();
    for handle in handles {
        let _ = handle.await;
    }
    kept.sort_by_key(|i| (-(i % 7), *i));
    let expected: Vec<String> = kept.iter().map(|i| i.to_string()).collect();
    assert_eq!(probe.entered(), expected);
}

#[tokio::test(start_paused = true)]
async fn status_says_cancelled_as_soon_as_cancel_returns_true() {
    let runner = one_slot();
    let running = runner.enqueue_task(forever("running")).unwrap();
    let waiting = runner.enqueue_task(forever("waiting")).unwrap();
    assert_eq!(running.status(), TaskStatus::Running);
    assert!(running.cancel());
    // Before the worker got to it: the status already tells the truth.
    assert_eq!(running.status(), TaskStatus::Cancelled);
    let info = runner.get_status(running.id()).unwrap();
    assert_eq!(info.status, TaskStatus::Cancelled);
    assert!(
        info.finished_at.is_none(),
        "its handler has not stopped yet"
    );
    assert!(!running.cancel(), "a second cancel has nothing to do");
    assert!(!runner.cancel(running.id()));
    assert!(waiting.cancel());
    assert_eq!(waiting.status(), TaskStatus::Cancelled);

    let id = running.id();
    assert!(matches!(running.await, Err(TaskError::Cancelled)));
    let info = runner.get_status(id).unwrap();
    assert_eq!(info.status, TaskStatus::Cancelled);
    assert!(info.finished_at.is_some());
    assert!(matches!(waiting.await, Err(TaskError::Cancelled)));
    assert_eq!(runner.queue_stats("one").unwrap().running, 0);
}
