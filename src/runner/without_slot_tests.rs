//! `TaskContext::without_slot` on the paused clock: a handler lends its slot while it waits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{QueueConfig, Task, TaskContext, TaskError, TaskRunner, TaskStatus};

fn runner() -> TaskRunner {
    TaskRunner::builder()
        .queue("q", QueueConfig::new().concurrency(1))
        .build()
        .unwrap()
}

async fn settle() {
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_micros(1)).await;
    }
}

type Log = Arc<Mutex<Vec<String>>>;

/// Logs `name` and its steps; waits `wait` without its slot, then works `work`.
fn waiter(
    log: &Log,
    name: &'static str,
    wait: u64,
    work: u64,
) -> Task<
    impl Fn(TaskContext) -> futures::future::BoxFuture<'static, Result<(), String>>
        + Send
        + Sync
        + 'static,
> {
    let log = Arc::clone(log);
    Task::new(name, move |ctx: TaskContext| {
        let log = Arc::clone(&log);
        Box::pin(async move {
            log.lock().unwrap().push(format!("{name} start"));
            if wait > 0 {
                ctx.without_slot(tokio::time::sleep(Duration::from_secs(wait)))
                    .await;
                log.lock().unwrap().push(format!("{name} back"));
            }
            tokio::time::sleep(Duration::from_secs(work)).await;
            log.lock().unwrap().push(format!("{name} end"));
            Ok(())
        }) as futures::future::BoxFuture<'static, Result<(), String>>
    })
    .queue("q")
}

#[tokio::test(start_paused = true)]
async fn a_waiting_task_lends_its_slot_and_resumes_when_it_gets_one_again() {
    let runner = runner();
    let log: Log = Arc::default();
    let a = runner.enqueue_task(waiter(&log, "a", 10, 1)).unwrap();
    let b = runner.enqueue_task(waiter(&log, "b", 0, 20)).unwrap();
    settle().await;
    assert_eq!(
        (a.status(), b.status()),
        (TaskStatus::Waiting, TaskStatus::Running)
    );
    let stats = runner.queue_stats("q").unwrap();
    assert_eq!((stats.running, stats.pending), (1, 0));
    tokio::time::sleep(Duration::from_secs(11)).await;
    // a's wait is over, but b holds the only slot: a waits for it.
    assert_eq!(a.status(), TaskStatus::Pending);
    assert_eq!(runner.queue_stats("q").unwrap().pending, 1);
    a.await.unwrap();
    b.await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        ["a start", "b start", "b end", "a back", "a end"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_task_keeps_its_priority_and_its_place() {
    let runner = runner();
    let log: Log = Arc::default();
    let a = runner.enqueue_task(waiter(&log, "a", 1, 1)).unwrap();
    let b = runner.enqueue_task(waiter(&log, "b", 0, 5)).unwrap();
    settle().await;
    let later = runner.enqueue_task(waiter(&log, "later", 0, 1)).unwrap();
    let urgent = runner
        .enqueue_task(waiter(&log, "urgent", 0, 1).priority(5))
        .unwrap();
    for h in [a, b, later, urgent] {
        h.await.unwrap();
    }
    assert_eq!(
        *log.lock().unwrap(),
        [
            "a start",
            "b start",
            "b end",
            "urgent start",
            "urgent end",
            "a back",
            "a end",
            "later start",
            "later end"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_while_waiting_ends_the_task_and_drops_its_future() {
    let runner = runner();
    let dropped = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&dropped);
    let a = runner
        .enqueue_task(
            Task::new("a", move |ctx: TaskContext| {
                let d = Arc::clone(&d);
                async move {
                    let guard = Flag(d);
                    ctx.without_slot(std::future::pending::<()>()).await;
                    drop(guard);
                    Ok::<_, String>(())
                }
            })
            .queue("q"),
        )
        .unwrap();
    settle().await;
    assert_eq!(a.status(), TaskStatus::Waiting);
    assert!(a.cancel());
    assert!(matches!(a.await, Err(TaskError::Cancelled)));
    assert!(dropped.load(Ordering::SeqCst));
    let stats = runner.queue_stats("q").unwrap();
    assert_eq!((stats.running, stats.pending), (0, 0));
    let next = runner
        .enqueue_task(Task::new("n", |_: TaskContext| async { Ok::<_, String>(1) }).queue("q"))
        .unwrap();
    assert_eq!(next.await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_while_waiting_or_back_in_line_ends_it_and_keeps_the_counts() {
    let runner = runner();
    let log: Log = Arc::default();
    let waiting = runner
        .enqueue_task(waiter(&log, "w", 100, 0).timeout(Duration::from_secs(5)))
        .unwrap();
    assert!(matches!(waiting.await, Err(TaskError::TimedOut)));
    // Back in line behind a long task when its timeout comes.
    let a = runner
        .enqueue_task(waiter(&log, "a", 1, 0).timeout(Duration::from_secs(5)))
        .unwrap();
    let b = runner.enqueue_task(waiter(&log, "b", 0, 100)).unwrap();
    settle().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(a.status(), TaskStatus::Pending);
    assert!(matches!(a.await, Err(TaskError::TimedOut)));
    let stats = runner.queue_stats("q").unwrap();
    assert_eq!((stats.running, stats.pending), (1, 0));
    assert!(b.cancel());
    let _ = b.await;
    runner.wait_idle().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_a_waiting_task_and_shutdown_now_cancels_it() {
    let runner = runner();
    let log: Log = Arc::default();
    let a = runner.enqueue_task(waiter(&log, "a", 10, 0)).unwrap();
    settle().await;
    runner.shutdown().await;
    a.await.unwrap();

    let runner = self::runner();
    let a = runner.enqueue_task(waiter(&log, "a", 10, 0)).unwrap();
    settle().await;
    runner.shutdown_now().await;
    assert!(matches!(a.await, Err(TaskError::Shutdown)));
}

#[tokio::test(start_paused = true)]
async fn a_group_member_gives_its_place_back_while_it_waits() {
    let runner = TaskRunner::builder()
        .queue("q", QueueConfig::new().concurrency(4))
        .build()
        .unwrap();
    let log: Log = Arc::default();
    let turn = runner.group().concurrency(1);
    let a = turn.enqueue_task(waiter(&log, "a", 10, 0)).unwrap();
    settle().await;
    let b = turn.enqueue_task(waiter(&log, "b", 0, 1)).unwrap();
    assert_eq!(
        b.status(),
        TaskStatus::Running,
        "a's place is free while it waits"
    );
    assert_eq!(turn.stats().waiting, 1);
    a.await.unwrap();
    b.await.unwrap();
}

struct Flag(Arc<AtomicBool>);

impl Drop for Flag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
