//! Per-attempt timeouts, on tokio's paused clock: counted from each attempt's start, retried
//! like a failure, and `TimedOut` in the end.

mod common;

use std::time::Duration;

use common::Starts;
use taskrunner::{QueueConfig, RetryPolicy, Task, TaskContext, TaskError, TaskRunner, TaskStatus};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn the_timeout_counts_from_the_attempts_start_not_from_enqueue() {
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let sleeper = |secs| {
        Task::new("sleep", move |_: TaskContext| async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            Ok::<_, String>(secs)
        })
        .queue("one")
    };
    let first = runner.enqueue_task(sleeper(5)).unwrap();
    // Waits 5 s for the slot, then runs 3 s: within its 4 s timeout.
    let second = runner
        .enqueue_task(sleeper(3).timeout(Duration::from_secs(4)))
        .unwrap();
    assert_eq!(first.await.unwrap(), 5);
    assert_eq!(second.await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_retried_then_fails_timed_out() {
    let runner = TaskRunner::new();
    let starts = Starts::default();
    let s = starts.clone();
    let began = Instant::now();
    let handle = runner
        .enqueue_task(
            Task::new("hang", move |_: TaskContext| {
                s.mark();
                std::future::pending::<Result<(), String>>()
            })
            .timeout(Duration::from_secs(2))
            .retry(RetryPolicy::fixed(Duration::from_secs(1)).max_retries(2)),
        )
        .unwrap();
    let id = handle.id();
    assert!(matches!(handle.await, Err(TaskError::TimedOut)));
    assert_eq!(starts.count(), 3);
    // 3 attempts of 2 s, 2 backoffs of 1 s.
    assert_eq!(began.elapsed(), Duration::from_secs(8));
    let info = runner.get_status(id).unwrap();
    assert_eq!(info.status, TaskStatus::Failed);
    assert_eq!(info.error.as_deref(), Some("timed out after 2s"));
}

#[tokio::test(start_paused = true)]
async fn a_timeout_then_a_success() {
    let runner = TaskRunner::new();
    let handle = runner
        .enqueue_task(
            Task::new("slow_then_fast", |ctx: TaskContext| async move {
                if ctx.attempt() == 1 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                Ok::<_, String>(ctx.attempt())
            })
            .timeout(Duration::from_secs(1))
            .retry(RetryPolicy::fixed(MS)),
        )
        .unwrap();
    assert_eq!(handle.await.unwrap(), 2);
}
