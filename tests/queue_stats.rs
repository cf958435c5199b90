//! `QueueStats` beyond the counts: the age of the oldest waiting task and recent wait and
//! run-time percentiles. These are wall-clock measurements (like `TaskInfo`'s times), so the
//! tests that check values use real time and assert lower bounds only.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::gated;
use taskrunner::{QueueConfig, Task, TaskRunner};
use tokio::sync::Semaphore;

#[tokio::test(start_paused = true)]
async fn samples_are_taken_per_first_start_and_per_attempt() {
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let fresh = runner.queue_stats("one").unwrap();
    assert_eq!(
        (fresh.oldest_pending_age, fresh.wait_time, fresh.run_time),
        (None, None, None)
    );

    let gate = Arc::new(Semaphore::new(0));
    let first = runner
        .enqueue_task(gated("first", &gate, 1).queue("one"))
        .unwrap();
    let second = runner
        .enqueue_task(gated("second", &gate, 2).queue("one"))
        .unwrap();
    let high = runner
        .enqueue_task(gated("high", &gate, 3).queue("one").priority(5))
        .unwrap();
    let stats = runner.queue_stats("one").unwrap();
    assert_eq!(stats.pending, 2);
    assert!(stats.oldest_pending_age.is_some(), "two wait");
    assert_eq!(
        stats.wait_time.map(|p| p.samples),
        Some(1),
        "one has started"
    );
    assert_eq!(stats.run_time, None, "no attempt has ended");

    gate.add_permits(3);
    assert_eq!(
        first.await.unwrap() + second.await.unwrap() + high.await.unwrap(),
        6
    );
    let stats = runner.queue_stats("one").unwrap();
    assert_eq!(stats.oldest_pending_age, None);
    assert_eq!(stats.wait_time.map(|p| p.samples), Some(3));
    assert_eq!(stats.run_time.map(|p| p.samples), Some(3));
}

#[tokio::test]
async fn wait_and_run_times_and_the_oldest_waiting_age_measure_real_time() {
    let runner = TaskRunner::builder()
        .queue("one", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let sleeper = |ms: u64| {
        Task::new("sleeps", move |_ctx| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, String>(())
        })
        .queue("one")
    };
    let first = runner.enqueue_task(sleeper(60)).unwrap();
    let second = runner.enqueue_task(sleeper(1)).unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let age = runner.queue_stats("one").unwrap().oldest_pending_age;
    assert!(
        age.is_some_and(|a| a >= Duration::from_millis(30)),
        "{age:?}"
    );
    first.await.unwrap();
    second.await.unwrap();
    let stats = runner.queue_stats("one").unwrap();
    let (wait, run) = (stats.wait_time.unwrap(), stats.run_time.unwrap());
    // The second waited for the first's 60 ms; the first ran at least that long.
    assert!(wait.max >= Duration::from_millis(60), "{wait:?}");
    assert!(run.max >= Duration::from_millis(60), "{run:?}");
    assert!(wait.p50 <= wait.p90 && wait.p90 <= wait.p99 && wait.p99 <= wait.max);
}
