//! Feature `metrics`: per-queue counters, gauges and histograms through the `metrics`
//! facade, read back with `metrics-util`'s debugging recorder.
#![cfg(feature = "metrics")]

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use taskrunner::{QueueConfig, RetryPolicy, Task, TaskError, TaskRunner};

/// The process-wide recorder (one per test binary), installed once.
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("no other recorder in this test binary");
        snapshotter
    })
}

/// A snapshot resets the counters of every queue: the tests take turns.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every metric of `queue`: counters and gauges by value, histograms by sample count.
fn metrics_of(queue: &str) -> HashMap<(MetricKind, String), f64> {
    let mut found = HashMap::new();
    for (key, _, _, value) in snapshotter().snapshot().into_vec() {
        let (kind, key) = key.into_parts();
        if !key
            .labels()
            .any(|l| l.key() == "queue" && l.value() == queue)
        {
            continue;
        }
        let value = match value {
            DebugValue::Counter(n) => n as f64,
            DebugValue::Gauge(v) => v.into_inner(),
            DebugValue::Histogram(samples) => samples.len() as f64,
        };
        found.insert((kind, key.name().to_owned()), value);
    }
    found
}

#[tokio::test(start_paused = true)]
async fn each_queue_counts_its_tasks_and_times_them() {
    let _turn = TURN.lock().await;
    snapshotter();
    let runner = TaskRunner::builder()
        .queue("metered", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let task = |name: &str| {
        Task::new(name.to_owned(), |_ctx| async { Ok::<_, String>(()) }).queue("metered")
    };
    let ok = runner.enqueue_task(task("ok")).unwrap();
    let failing = runner
        .enqueue_task(
            Task::new("fails", |_ctx| async { Err::<(), _>("no".to_owned()) }).queue("metered"),
        )
        .unwrap();
    let flaky = runner
        .enqueue_task(
            Task::new("flaky", |ctx| async move {
                if ctx.attempt() == 1 {
                    Err("once".to_owned())
                } else {
                    Ok(())
                }
            })
            .queue("metered")
            .retry(RetryPolicy::fixed(Duration::from_millis(10))),
        )
        .unwrap();
    let cancelled = runner.enqueue_task(task("cancelled")).unwrap();
    assert!(cancelled.cancel());
    let panics = runner
        .enqueue_task(
            Task::new("panics", |_ctx| async {
                if true {
                    std::panic::resume_unwind(Box::new("metered panic"));
                }
                Ok::<(), String>(())
            })
            .queue("metered"),
        )
        .unwrap();
    ok.await.unwrap();
    assert!(failing.await.is_err());
    flaky.await.unwrap();
    assert!(matches!(cancelled.await, Err(TaskError::Cancelled)));
    assert!(matches!(panics.await, Err(TaskError::Panicked(_))));
    runner.wait_idle().await;

    let m = metrics_of("metered");
    let get = |kind, name: &str| m.get(&(kind, name.to_owned())).copied();
    use MetricKind::{Counter, Gauge, Histogram};
    assert_eq!(get(Counter, "taskrunner_tasks_enqueued_total"), Some(5.0));
    assert_eq!(
        get(Counter, "taskrunner_tasks_started_total"),
        Some(5.0),
        "4 tasks, one twice"
    );
    assert_eq!(get(Counter, "taskrunner_tasks_completed_total"), Some(2.0));
    assert_eq!(
        get(Counter, "taskrunner_tasks_failed_total"),
        Some(2.0),
        "a failure and a panic"
    );
    assert_eq!(get(Counter, "taskrunner_tasks_retried_total"), Some(1.0));
    assert_eq!(get(Counter, "taskrunner_tasks_cancelled_total"), Some(1.0));
    for gauge in [
        "taskrunner_tasks_pending",
        "taskrunner_tasks_running",
        "taskrunner_tasks_retrying",
    ] {
        assert_eq!(get(Gauge, gauge), Some(0.0), "{gauge} once idle");
    }
    assert_eq!(
        get(Histogram, "taskrunner_task_wait_seconds"),
        Some(4.0),
        "first starts"
    );
    assert_eq!(
        get(Histogram, "taskrunner_task_run_seconds"),
        Some(5.0),
        "attempts"
    );
    // Another queue's metrics carry its own label.
    assert!(metrics_of("main").is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_gauges_follow_the_queue() {
    let _turn = TURN.lock().await;
    snapshotter();
    let runner = TaskRunner::builder()
        .queue("gauged", QueueConfig::new().concurrency(1))
        .build()
        .unwrap();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let gate = std::sync::Arc::clone(&gate);
            runner
                .enqueue_task(
                    Task::new("gated", move |_ctx| {
                        let gate = std::sync::Arc::clone(&gate);
                        async move {
                            gate.acquire().await.unwrap().forget();
                            Ok::<_, String>(())
                        }
                    })
                    .queue("gauged"),
                )
                .unwrap()
        })
        .collect();
    let m = metrics_of("gauged");
    assert_eq!(
        m.get(&(MetricKind::Gauge, "taskrunner_tasks_running".into())),
        Some(&1.0)
    );
    assert_eq!(
        m.get(&(MetricKind::Gauge, "taskrunner_tasks_pending".into())),
        Some(&2.0)
    );
    gate.add_permits(3);
    for handle in handles {
        handle.await.unwrap();
    }
    let m = metrics_of("gauged");
    assert_eq!(
        m.get(&(MetricKind::Gauge, "taskrunner_tasks_pending".into())),
        Some(&0.0)
    );
    assert_eq!(
        m.get(&(MetricKind::Gauge, "taskrunner_tasks_running".into())),
        Some(&0.0)
    );
}
