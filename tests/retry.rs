//! Retry with backoff, on tokio's paused clock.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{settle, Starts};
use taskrunner::{QueueConfig, RetryPolicy, Task, TaskContext, TaskError, TaskRunner, TaskStatus};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

fn failing(
    starts: &Starts,
    succeed_on: u32,
) -> Task<impl Fn(TaskContext) -> futures::future::Ready<Result<u32, String>> + Send + Sync> {
    let starts = starts.clone();
    Task::new("flaky", move |ctx: TaskContext| {
        starts.mark();
        futures::future::ready(if ctx.attempt() >= succeed_on {
            Ok(ctx.attempt())
        } else {
            Err(format!("failure {}", ctx.attempt()))
        })
    })
}

#[tokio::test(start_paused = true)]
async fn no_retry_unless_a_policy_is_set() {
    let runner = TaskRunner::new();
    let starts = Starts::default();
    let handle = runner.enqueue_task(failing(&starts, u32::MAX)).unwrap();
    let id = handle.id();
    match handle.await {
        Err(TaskError::Failed(e)) => assert_eq!(e, "failure 1"),
        other => panic!("expected Failed, got {other:?}"),
    }
    let info = runner.get_status(id).unwrap();
    assert_eq!((info.status, info.attempts), (TaskStatus::Failed, 1));
    assert_eq!(info.error.as_deref(), Some("failure 1"));
}

#[tokio::test(start_paused = true)]
async fn exponential_backoff_doubles_from_initial() {
    let runner = TaskRunner::new();
    let starts = Starts::default();
    let handle = runner
        .enqueue_task(
            failing(&starts, u32::MAX).retry(RetryPolicy::exponential(100 * MS).max_retries(3)),
        )
        .unwrap();
    match handle.await {
        Err(TaskError::Failed(e)) => assert_eq!(e, "failure 4", "the last attempt's error"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(starts.count(), 4, "1 + max_retries attempts");
    assert_eq!(starts.gaps(), [100 * MS, 200 * MS, 400 * MS]);
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped_and_factor_is_configurable() {
    let runner = TaskRunner::new();
    let starts = Starts::default();
    let policy = RetryPolicy::exponential(100 * MS)
        .factor(3.0)
        .max_delay(500 * MS)
        .max_retries(4);
    let handle = runner
        .enqueue_task(failing(&starts, 5).retry(policy))
        .unwrap();
    assert_eq!(handle.await.unwrap(), 5);
    assert_eq!(starts.gaps(), [100 * MS, 300 * MS, 500 * MS, 500 * MS]);
}

#[tokio::test(start_paused = true)]
async fn succeeding_on_a_retry_completes_the_task() {
    let runner = TaskRunner::new();
    let starts = Starts::default();
    let handle = runner
        .enqueue_task(failing(&starts, 2).retry(RetryPolicy::fixed(50 * MS)))
        .unwrap();
    let id = handle.id();
    assert_eq!(handle.await.unwrap(), 2);
    let info = runner.get_status(id).unwrap();
    assert_eq!((info.status, info.attempts), (TaskStatus::Completed, 2));
}

#[tokio::test(start_paused = true)]
async fn a_task_in_backoff_holds_no_slot() {
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let starts = Starts::default();
    let flaky = runner
        .enqueue_task(
            failing(&starts, 2)
                .queue("one")
                .retry(RetryPolicy::fixed(Duration::from_secs(10))),
        )
        .unwrap();
    let started = Instant::now();
    let other = runner
        .enqueue_task(
            Task::new("other", |_: TaskContext| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, String>(Instant::now())
            })
            .queue("one"),
        )
        .unwrap();
    settle().await;
    assert_eq!(flaky.status(), TaskStatus::Retrying);
    assert_eq!(
        other.status(),
        TaskStatus::Running,
        "the backoff gave up the only slot"
    );
    let stats = runner.queue_stats("one").unwrap();
    assert_eq!((stats.running, stats.retrying, stats.pending), (1, 1, 0));

    let other_done = other.await.unwrap();
    assert!(
        other_done - started < Duration::from_secs(2),
        "ran during the 10 s backoff"
    );
    assert_eq!(flaky.await.unwrap(), 2);
    assert_eq!(starts.gaps(), [Duration::from_secs(10)]);
}

#[tokio::test(start_paused = true)]
async fn a_retried_task_keeps_its_place_among_equal_priorities() {
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let task = |name: &'static str, fail_first: bool, work: Duration| {
        let order = Arc::clone(&order);
        Task::new(name, move |ctx: TaskContext| {
            let order = Arc::clone(&order);
            async move {
                order
                    .lock()
                    .unwrap()
                    .push(format!("{name}#{}", ctx.attempt()));
                tokio::time::sleep(work).await;
                if fail_first && ctx.attempt() == 1 {
                    Err("first try fails")
                } else {
                    Ok(())
                }
            }
        })
        .queue("one")
    };
    // `a` fails at t=1s and waits 1 s; `b` runs 1s..3s; `c` was enqueued after `a`, so when
    // the slot frees at t=3s, `a` (back in the queue since t=2s) goes before `c`.
    let a = runner
        .enqueue_task(
            task("a", true, Duration::from_secs(1))
                .retry(RetryPolicy::fixed(Duration::from_secs(1))),
        )
        .unwrap();
    let b = runner
        .enqueue_task(task("b", false, Duration::from_secs(2)))
        .unwrap();
    let c = runner
        .enqueue_task(task("c", false, Duration::from_secs(1)))
        .unwrap();
    a.await.unwrap();
    b.await.unwrap();
    c.await.unwrap();
    assert_eq!(*order.lock().unwrap(), ["a#1", "b#1", "a#2", "c#1"]);
}

#[tokio::test(start_paused = true)]
async fn retry_if_marks_errors_permanent() {
    let runner = TaskRunner::new();
    let starts = Starts::default();
    let handle = runner
        .enqueue_task(
            failing(&starts, u32::MAX)
                .retry(RetryPolicy::fixed(MS).max_retries(5))
                .retry_if(|e: &String| e != "failure 2"),
        )
        .unwrap();
    assert!(matches!(handle.await, Err(TaskError::Failed(e)) if e == "failure 2"));
    assert_eq!(starts.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_not_retried() {
    let runner = TaskRunner::new();
    let starts = Starts::default();
    let s = starts.clone();
    let handle = runner
        .enqueue_task(
            Task::new("boom", move |_: TaskContext| {
                s.mark();
                async {
                    if true {
                        panic!("boom");
                    }
                    Ok::<(), String>(())
                }
            })
            .retry(RetryPolicy::fixed(MS).max_retries(3)),
        )
        .unwrap();
    let id = handle.id();
    assert!(matches!(handle.await, Err(TaskError::Panicked(m)) if m == "boom"));
    assert_eq!(starts.count(), 1);
    assert_eq!(
        runner.get_status(id).unwrap().error.as_deref(),
        Some("panicked: boom")
    );
}

#[test]
fn jitter_stays_within_half_to_full_delay() {
    let policy = RetryPolicy::exponential(100 * MS).jitter(true);
    for retry in 1..=4 {
        let full = RetryPolicy::exponential(100 * MS).delay_for(retry);
        let samples: Vec<Duration> = (0..200).map(|_| policy.delay_for(retry)).collect();
        assert!(
            samples.iter().all(|d| *d >= full / 2 && *d <= full),
            "{samples:?}"
        );
        assert!(
            samples.iter().any(|d| *d != samples[0]),
            "jitter varies the delay"
        );
    }
}

#[test]
fn nonsensical_settings_are_clamped() {
    // A factor below 1 (or not finite) is a constant delay.
    for factor in [0.5, -3.0, f64::NAN, f64::INFINITY] {
        let policy = RetryPolicy::exponential(100 * MS).factor(factor);
        assert_eq!(policy.delay_for(5), 100 * MS, "factor {factor}");
    }
    // A max below initial wins.
    let policy =
        RetryPolicy::exponential(Duration::from_secs(10)).max_delay(Duration::from_secs(1));
    assert_eq!(policy.delay_for(1), Duration::from_secs(1));
    assert_eq!(policy.delay_for(3), Duration::from_secs(1));
    // Zero initial with jitter stays zero.
    assert_eq!(
        RetryPolicy::exponential(Duration::ZERO)
            .jitter(true)
            .delay_for(3),
        Duration::ZERO
    );
    // Huge retry numbers saturate at the cap instead of overflowing.
    let policy = RetryPolicy::exponential(MS);
    assert_eq!(policy.delay_for(u32::MAX), Duration::from_secs(60));
    assert_eq!(policy.delay_for(0), MS, "retry 0 is taken as 1");
    // The default cap stretches to a long initial delay.
    let policy = RetryPolicy::exponential(Duration::from_secs(120));
    assert_eq!(policy.delay_for(1), Duration::from_secs(120));
    assert_eq!(policy.retries(), 3);
}
