//! Feature `metrics`: a queue with a budget reports the units used in its window and the
//! tasks waiting for a budget as gauges.
#![cfg(feature = "metrics")]

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use taskrunner::{Budget, QueueConfig, Task, TaskContext, TaskRunner};

#[tokio::test(start_paused = true)]
async fn the_budget_gauges_follow_the_queue() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder in this test binary");
    // (units used, tasks waiting for budget); a snapshot drains what it reads.
    let gauges = || {
        let mut found = (None, None);
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            if let (MetricKind::Gauge, DebugValue::Gauge(v)) = (kind, value) {
                match key.name() {
                    "taskrunner_budget_used_units" => found.0 = Some(v.into_inner()),
                    "taskrunner_tasks_waiting_for_budget" => found.1 = Some(v.into_inner()),
                    _ => {}
                }
            }
        }
        found
    };
    let budget = Budget::new(100, Duration::from_secs(10));
    let runner = TaskRunner::builder()
        .queue("llm", QueueConfig::new().concurrency(4).budget(budget))
        .build()
        .unwrap();
    let call = |cost| {
        Task::new("call", |_: TaskContext| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, String>(())
        })
        .queue("llm")
        .cost(cost)
    };
    let first = runner.enqueue_task(call(70)).unwrap();
    let second = runner.enqueue_task(call(50)).unwrap();
    assert_eq!(gauges(), (Some(70.0), Some(1.0)));
    first.await.unwrap();
    second.await.unwrap();
    assert_eq!(gauges(), (Some(50.0), Some(0.0)));
}
