//! Cooperative cancel: with a cancel grace, the abort token fires first and the handler has
//! up to the grace to finish on its own, holding its slot; then its future is dropped.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::settle;
use taskrunner::{QueueConfig, RetryPolicy, Task, TaskError, TaskRunner, TaskStatus};
use tokio::time::Instant;

fn one_slot() -> TaskRunner {
    TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap()
}

/// Sets its flag when dropped.
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_watches_its_token_cleans_up_within_the_grace() {
    let runner = one_slot();
    let cleaned = Arc::new(AtomicBool::new(false));
    let c = Arc::clone(&cleaned);
    let handle = runner
        .enqueue_task(
            Task::new("crawl", move |ctx| {
                let c = Arc::clone(&c);
                async move {
                    ctx.abort_token().cancelled().await;
                    // Cleanup that takes a while, well within the grace.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    c.store(true, Ordering::SeqCst);
                    Ok::<_, String>("partial")
                }
            })
            .queue("one")
            .cancel_grace(Duration::from_secs(1)),
        )
        .unwrap();
    let next = runner
        .enqueue_task(Task::new("next", |_ctx| async { Ok::<_, String>(1) }).queue("one"))
        .unwrap();
    settle().await;
    let start = Instant::now();
    assert!(handle.cancel());
    assert_eq!(handle.status(), TaskStatus::Cancelled);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Cleaning up: the slot is still held, the next task waits.
    let stats = runner.queue_stats("one").unwrap();
    assert_eq!((stats.running, stats.pending), (1, 1));
    assert!(!cleaned.load(Ordering::SeqCst));

    assert!(
        matches!(handle.await, Err(TaskError::Cancelled)),
        "Cancelled all the same"
    );
    assert!(cleaned.load(Ordering::SeqCst));
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(50),
        "ended when the handler did"
    );
    assert_eq!(next.await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_ignores_its_token_is_dropped_at_the_end_of_the_grace() {
    let runner = one_slot();
    let dropped = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&dropped);
    let stubborn = runner
        .enqueue_task(
            Task::new("stubborn", move |_ctx| {
                let guard = Dropped(Arc::clone(&d));
                async move {
                    let _guard = guard;
                    std::future::pending::<Result<(), String>>().await
                }
            })
            .queue("one")
            .cancel_grace(Duration::from_millis(100)),
        )
        .unwrap();
    let next = runner
        .enqueue_task(Task::new("next", |_ctx| async { Ok::<_, String>(2) }).queue("one"))
        .unwrap();
    settle().await;
    let start = Instant::now();
    assert!(stubborn.cancel());
    tokio::time::sleep(Duration::from_millis(99)).await;
    assert!(!dropped.load(Ordering::SeqCst), "within the grace");
    assert_eq!(
        runner.queue_stats("one").unwrap().running,
        1,
        "the slot is held"
    );
    assert_eq!(next.status(), TaskStatus::Pending);

    assert!(matches!(stubborn.await, Err(TaskError::Cancelled)));
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert!(dropped.load(Ordering::SeqCst), "dropped at the grace's end");
    assert_eq!(next.await.unwrap(), 2, "the slot was freed");
    assert_eq!(runner.queue_stats("one").unwrap().running, 0);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_fires_the_attempts_token_and_the_retry_gets_a_fresh_one() {
    let runner = TaskRunner::new();
    let stopped_cleanly = Arc::new(AtomicU32::new(0));
    let s = Arc::clone(&stopped_cleanly);
    let handle = runner
        .enqueue_task(
            Task::new("slow", move |ctx| {
                let s = Arc::clone(&s);
                async move {
                    assert!(
                        !ctx.is_cancelled(),
                        "attempt {} starts with a fresh token",
                        ctx.attempt()
                    );
                    tokio::select! {
                        () = ctx.abort_token().cancelled() => {
                            s.fetch_add(1, Ordering::SeqCst);
                            Err("stopped".to_owned())
                        }
                        () = tokio::time::sleep(Duration::from_secs(60)) => Ok(()),
                    }
                }
            })
            .timeout(Duration::from_millis(30))
            .retry(RetryPolicy::fixed(Duration::from_millis(5)).max_retries(1))
            .cancel_grace(Duration::from_millis(10)),
        )
        .unwrap();
    assert!(
        matches!(handle.await, Err(TaskError::TimedOut)),
        "TimedOut all the same"
    );
    assert_eq!(
        stopped_cleanly.load(Ordering::SeqCst),
        2,
        "both attempts saw their token"
    );
}

#[tokio::test(start_paused = true)]
async fn the_runners_default_grace_applies_unless_a_task_sets_its_own() {
    let runner = TaskRunner::builder()
        .cancel_grace(Duration::from_millis(200))
        .build()
        .unwrap();
    let watcher = |flag: &Arc<AtomicBool>| {
        let flag = Arc::clone(flag);
        move |ctx: taskrunner::TaskContext| {
            let flag = Arc::clone(&flag);
            async move {
                ctx.abort_token().cancelled().await;
                tokio::time::sleep(Duration::from_millis(10)).await;
                flag.store(true, Ordering::SeqCst);
                Ok::<_, String>(())
            }
        }
    };
    let (by_default, no_grace) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let a = runner
        .enqueue_task(Task::new("a", watcher(&by_default)))
        .unwrap();
    let b = runner
        .enqueue_task(Task::new("b", watcher(&no_grace)).cancel_grace(Duration::ZERO))
        .unwrap();
    settle().await;
    assert!(a.cancel() && b.cancel());
    assert!(matches!(b.await, Err(TaskError::Cancelled)));
    assert!(matches!(a.await, Err(TaskError::Cancelled)));
    assert!(
        by_default.load(Ordering::SeqCst),
        "the runner's grace let it clean up"
    );
    assert!(
        !no_grace.load(Ordering::SeqCst),
        "a zero grace drops the future at once"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_now_gives_running_handlers_their_grace() {
    let runner = TaskRunner::builder()
        .cancel_grace(Duration::from_secs(1))
        .build()
        .unwrap();
    let cleaned = Arc::new(AtomicBool::new(false));
    let c = Arc::clone(&cleaned);
    let handle = runner
        .enqueue_task(Task::new("a", move |ctx| {
            let c = Arc::clone(&c);
            async move {
                ctx.abort_token().cancelled().await;
                tokio::time::sleep(Duration::from_millis(30)).await;
                c.store(true, Ordering::SeqCst);
                Ok::<_, String>(())
            }
        }))
        .unwrap();
    settle().await;
    runner.shutdown_now().await;
    assert!(cleaned.load(Ordering::SeqCst));
    assert!(matches!(handle.await, Err(TaskError::Shutdown)));
}

#[tokio::test(start_paused = true)]
async fn a_value_returned_within_the_grace_that_panics_when_dropped_is_contained() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("grace value dropped");
        }
    }
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"grace value dropped") {
            default_hook(info);
        }
    }));
    let runner = one_slot();
    let handle = runner
        .enqueue_task(
            Task::new("returns", |ctx| async move {
                ctx.abort_token().cancelled().await;
                Ok::<_, String>(PanicOnDrop)
            })
            .queue("one")
            .cancel_grace(Duration::from_secs(1)),
        )
        .unwrap();
    let next = runner
        .enqueue_task(Task::new("next", |_ctx| async { Ok::<_, String>(3) }).queue("one"))
        .unwrap();
    settle().await;
    // Cancelled from here: the value is dropped by whoever ends the task.
    assert!(handle.cancel());
    assert!(matches!(handle.await, Err(TaskError::Cancelled)));
    assert_eq!(next.await.unwrap(), 3);
    assert_eq!(runner.queue_stats("one").unwrap().running, 0);
}
