//! In-process observability of a durable run that waits: the attempt that parks ends its
//! task `Waiting` (not `Completed`) in the event stream and the metrics, and calls no
//! completion callback; the resumed attempt, a new task, completes. The outcome is decided
//! in the runner, the same for both backends: SQLite here.
#![cfg(all(feature = "sqlite", feature = "metrics"))]

use std::collections::HashMap;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt as _;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use taskrunner::store::SqliteStore;
use taskrunner::{EventKind, QueueConfig, RunStatus, TaskContext, TaskDef, TaskRunner};

type Out = BoxFuture<'static, Result<u32, String>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_attempt_ends_waiting_not_completed() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this binary");
    let dir = std::env::temp_dir().join(format!("taskrunner_observe_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let def = TaskDef::new("approval", |ctx: TaskContext, n: u32| -> Out {
        Box::pin(async move {
            let ok: Option<u32> = ctx
                .wait_for_signal("approve", Duration::from_secs(86_400))
                .await?;
            Ok(n + ok.unwrap_or(0))
        })
    })
    .queue("observed");
    let runner = TaskRunner::builder()
        .queue("observed", QueueConfig::new().concurrency(1))
        .store(SqliteStore::open(dir.join("runs.db")).await.unwrap())
        .poll_interval(Duration::from_millis(50))
        .register(&def)
        .build()
        .unwrap();
    let mut events = runner.subscribe();
    let run = runner.submit(&def, 1).await.unwrap();
    let id = run.id();
    tokio::time::timeout(Duration::from_secs(30), async {
        while runner.run_info(id).await.unwrap().unwrap().status != RunStatus::Waiting {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the run to wait");
    runner.signal(id, "approve", &41_u32).await.unwrap();
    assert_eq!(run.await.unwrap(), 42);
    runner.shutdown().await;

    // Two tasks ran the run: the first ended Waiting, the second Completed.
    let mut by_task: HashMap<_, Vec<EventKind>> = HashMap::new();
    let mut order = Vec::new();
    while let Some(Some(event)) =
        futures::FutureExt::now_or_never(tokio::task::unconstrained(events.next()))
    {
        let event = event.unwrap();
        if !by_task.contains_key(&event.id) {
            order.push(event.id);
        }
        by_task.entry(event.id).or_default().push(event.kind);
    }
    let ends: Vec<_> = order
        .iter()
        .map(|task| by_task[task].last().cloned().unwrap())
        .collect();
    assert_eq!(
        ends,
        [EventKind::Waiting, EventKind::Completed],
        "{by_task:?}"
    );
    assert!(EventKind::Waiting.is_terminal());
    assert!(
        !by_task[&order[0]].contains(&EventKind::Completed),
        "{by_task:?}"
    );

    let mut counters = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if let DebugValue::Counter(n) = value {
            let (_, key) = key.into_parts();
            if key.labels().any(|l| l.value() == "observed") {
                counters.insert(key.name().to_owned(), n);
            }
        }
    }
    assert_eq!(
        counters.get("taskrunner_tasks_parked_total"),
        Some(&1),
        "{counters:?}"
    );
    assert_eq!(
        counters.get("taskrunner_tasks_completed_total"),
        Some(&1),
        "{counters:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
