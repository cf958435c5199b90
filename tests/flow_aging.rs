//! `QueueConfig::aging`: a waiting task gains +1 priority per interval waited, so a low
//! priority is not starved by a stream of higher ones.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Probe;
use taskrunner::{ConfigError, QueueConfig, Task, TaskContext, TaskRunner};

/// A task that enters `probe` as `label` and works for `work`.
fn timed(
    label: &str,
    probe: &Arc<Probe>,
    work: Duration,
) -> Task<
    impl Fn(TaskContext) -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync,
> {
    let (l, probe) = (label.to_owned(), Arc::clone(probe));
    Task::new(label, move |_: TaskContext| {
        let (l, probe) = (l.clone(), Arc::clone(&probe));
        Box::pin(async move {
            let _inside = probe.enter(l);
            tokio::time::sleep(work).await;
            Ok(())
        }) as futures::future::BoxFuture<'static, Result<(), String>>
    })
}

fn runner(aging: Option<Duration>) -> TaskRunner {
    let mut config = QueueConfig::new().concurrency(1);
    if let Some(interval) = aging {
        config = config.aging(interval);
    }
    TaskRunner::builder().queue("main", config).build().unwrap()
}

/// The order in which `low` (priority 0, enqueued at 0 s), then `p2` and `p3` (enqueued at
/// 25 s) start after a blocker that runs until 26 s.
async fn order_with(aging: Option<Duration>) -> Vec<String> {
    let runner = runner(aging);
    let probe = Probe::new();
    let mut handles = vec![
        runner
            .enqueue_task(timed("blocker", &probe, Duration::from_secs(26)))
            .unwrap(),
        runner
            .enqueue_task(timed("low", &probe, Duration::from_secs(1)))
            .unwrap(),
    ];
    tokio::time::sleep(Duration::from_secs(25)).await;
    for (label, priority) in [("p2", 2), ("p3", 3)] {
        handles.push(
            runner
                .enqueue_task(timed(label, &probe, Duration::from_secs(1)).priority(priority))
                .unwrap(),
        );
    }
    for h in handles {
        h.await.unwrap();
    }
    probe.entered()
}

#[tokio::test(start_paused = true)]
async fn a_task_that_waited_ranks_as_priority_plus_intervals_waited() {
    // low waited 26 s at 10 s a step: it ranks as 2.6, ahead of p2 (2.1) and behind p3 (3.1).
    assert_eq!(
        order_with(Some(Duration::from_secs(10))).await,
        ["blocker", "p3", "low", "p2"]
    );
    // Without aging, priority alone.
    assert_eq!(order_with(None).await, ["blocker", "p3", "p2", "low"]);
}

#[tokio::test(start_paused = true)]
async fn a_low_priority_task_is_not_starved_by_a_stream_of_urgent_ones() {
    let runner = runner(Some(Duration::from_secs(5)));
    let probe = Probe::new();
    let mut handles = vec![runner
        .enqueue_task(timed("first", &probe, Duration::from_secs(1)))
        .unwrap()];
    handles.push(
        runner
            .enqueue_task(timed("background", &probe, Duration::from_secs(1)).priority(-1))
            .unwrap(),
    );
    // A priority-1 task every second, each taking a second: without aging the background
    // task would wait for all forty.
    for i in 0..40 {
        handles.push(
            runner
                .enqueue_task(timed(&format!("u{i}"), &probe, Duration::from_secs(1)).priority(1))
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for h in handles {
        h.await.unwrap();
    }
    let entered = probe.entered();
    let at = entered.iter().position(|l| l == "background").unwrap();
    // Scores (priority·5 s − enqueue time): background −5 s, u_i 5 s − i s. u0..u9 rank
    // above it, u10 ties and loses to the older task: it starts 12th, after `first`.
    assert_eq!(at, 11, "{entered:?}");
}

#[test]
fn a_zero_tiny_or_huge_aging_interval_is_a_config_error() {
    for interval in [
        Duration::ZERO,
        Duration::from_micros(999),
        Duration::from_millis(u64::from(u32::MAX) + 1),
    ] {
        let err = TaskRunner::builder()
            .queue("q", QueueConfig::new().aging(interval))
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, ConfigError::InvalidSetting { queue, setting: "aging", .. } if queue == "q"),
            "{interval:?}: {err:?}"
        );
    }
}
