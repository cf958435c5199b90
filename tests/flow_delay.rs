//! `Task::delay`: a delayed task is `Delayed` until its start time, holds no slot, is not
//! pending, can be cancelled, and is waited for by `shutdown` and `wait_idle` but cancelled
//! by `shutdown_now`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{gated, settle};
use futures::StreamExt;
use taskrunner::{
    EventKind, QueueConfig, Task, TaskContext, TaskError, TaskRunner, TaskStatus, WaitReason,
};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// A task that counts its runs and records when it started.
fn counted(
    runs: &Arc<AtomicUsize>,
) -> Task<
    impl Fn(TaskContext) -> futures::future::BoxFuture<'static, Result<Instant, String>> + Send + Sync,
> {
    let runs = Arc::clone(runs);
    Task::new("counted", move |_: TaskContext| {
        runs.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(Instant::now()) })
            as futures::future::BoxFuture<'static, Result<Instant, String>>
    })
}

#[tokio::test(start_paused = true)]
async fn a_delayed_task_waits_its_delay_holding_no_slot_then_runs() {
    let runner = TaskRunner::builder()
        .queue("main", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let delayed = runner
        .enqueue_task(counted(&runs).delay(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(delayed.status(), TaskStatus::Delayed);
    let info = runner.get_status(delayed.id()).unwrap();
    assert_eq!(info.waiting_for, Some(WaitReason::Delayed));
    assert_eq!(delayed.info().waiting_for, Some(WaitReason::Delayed));
    let stats = runner.queue_stats("main").unwrap();
    assert_eq!((stats.delayed, stats.pending, stats.running), (1, 0, 0));

    // It holds no slot: an ordinary task takes the only one at once.
    let gate = Arc::new(Semaphore::new(0));
    let other = runner.enqueue_task(gated("other", &gate, ())).unwrap();
    assert_eq!(other.status(), TaskStatus::Running);

    tokio::time::sleep(Duration::from_millis(9_999)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(delayed.status(), TaskStatus::Delayed);
    // Its delay ends with the slot taken: it waits in the queue like a new task.
    tokio::time::sleep(Duration::from_millis(1)).await;
    settle().await;
    assert_eq!(delayed.status(), TaskStatus::Pending);
    let stats = runner.queue_stats("main").unwrap();
    assert_eq!((stats.delayed, stats.pending), (0, 1));
    gate.add_permits(1);
    let started = delayed.await.unwrap();
    assert!(started - start >= Duration::from_secs(10));
    other.await.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_delayed_task_starts_exactly_at_its_start_time_when_a_slot_is_free() {
    let runner = TaskRunner::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handle = runner
        .enqueue_task(counted(&runs).delay(Duration::from_millis(250)))
        .unwrap();
    let started = handle.await.unwrap();
    assert_eq!(started - start, Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_a_delayed_task_before_it_runs() {
    let runner = TaskRunner::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let handle = runner
        .enqueue_task(counted(&runs).delay(Duration::from_secs(5)))
        .unwrap();
    assert!(runner.cancel(handle.id()));
    assert!(!handle.cancel(), "already finished");
    assert_eq!(runner.queue_stats("main").unwrap().delayed, 0);
    assert!(matches!(handle.await, Err(TaskError::Cancelled)));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    runner.wait_idle().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_and_wait_idle_wait_for_a_delayed_task() {
    let runner = TaskRunner::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handle = runner
        .enqueue_task(counted(&runs).delay(Duration::from_secs(3)))
        .unwrap();
    runner.wait_idle().await;
    assert_eq!(Instant::now() - start, Duration::from_secs(3));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    handle.await.unwrap();

    let second = runner
        .enqueue_task(counted(&runs).delay(Duration::from_secs(3)))
        .unwrap();
    runner.shutdown().await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "shutdown ran it, nothing lost"
    );
    assert!(second.await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn shutdown_now_cancels_a_delayed_task() {
    let runner = TaskRunner::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let handle = runner
        .enqueue_task(counted(&runs).delay(Duration::from_secs(3)))
        .unwrap();
    runner.shutdown_now().await;
    assert!(matches!(handle.await, Err(TaskError::Shutdown)));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_delayed_task_enters_the_order_by_its_priority_and_a_zero_delay_is_none() {
    let runner = TaskRunner::builder()
        .queue("main", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let blocker = runner
        .enqueue_task(gated("blocker", &gate, "blocker"))
        .unwrap();
    let low = runner.enqueue_task(gated("low", &gate, "low")).unwrap();
    let urgent = runner
        .enqueue_task(
            gated("urgent", &gate, "urgent")
                .priority(5)
                .delay(Duration::from_secs(1)),
        )
        .unwrap();
    let now = runner
        .enqueue_task(gated("now", &gate, "now").delay(Duration::ZERO))
        .unwrap();
    assert_eq!(now.status(), TaskStatus::Pending);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(urgent.status(), TaskStatus::Pending);
    gate.add_permits(1);
    blocker.await.unwrap();
    settle().await;
    assert_eq!(
        urgent.status(),
        TaskStatus::Running,
        "priority 5 goes first"
    );
    gate.add_permits(3);
    for h in [urgent, low, now] {
        h.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_delayed_task_reports_a_delayed_event() {
    let runner = TaskRunner::new();
    let mut events = runner.subscribe();
    let runs = Arc::new(AtomicUsize::new(0));
    let handle = runner
        .enqueue_task(counted(&runs).delay(Duration::from_secs(1)))
        .unwrap();
    handle.await.unwrap();
    let kinds: Vec<EventKind> = events
        .by_ref()
        .take(4)
        .map(|e| e.unwrap().kind)
        .collect()
        .await;
    assert_eq!(kinds[0], EventKind::Enqueued);
    assert!(matches!(kinds[1], EventKind::Delayed { .. }), "{kinds:?}");
    assert_eq!(kinds[2], EventKind::Started { attempt: 1 });
    assert_eq!(kinds[3], EventKind::Completed);
}
