//! Run streams show waits: a run that parks records `Status(Waiting)` (live to a reader
//! tailing it), and its resume the `Status(Running)` of the claim that takes it again; a
//! wait whose signal was already kept parks nothing and records nothing. Both backends.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

#[macro_use]
mod store_support;

use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt as _;
use store_support::TestDb;
use taskrunner::{RunEvent, RunEventKind, RunStatus, TaskContext, TaskDef, TaskRunner};

const LIMIT: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

type Out = BoxFuture<'static, Result<u32, String>>;

/// Emits `before`, waits for `go`, emits `after`.
fn waiter() -> TaskDef<impl Fn(TaskContext, u32) -> Out + Clone> {
    TaskDef::new("waiter", |ctx: TaskContext, n: u32| -> Out {
        Box::pin(async move {
            ctx.emit("before", &n).await?;
            let go: Option<u32> = ctx
                .wait_for_signal("go", Duration::from_secs(86_400))
                .await?;
            ctx.emit("after", &go).await?;
            Ok(n + go.unwrap_or(0))
        })
    })
}

/// The statuses and emit topics of `events`, in order.
fn story(events: &[RunEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match &e.kind {
            RunEventKind::Status(s) => format!("{s:?}"),
            RunEventKind::Emitted { topic, .. } => topic.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

async fn a_parked_run_records_waiting_then_its_resume(db: TestDb) {
    let def = waiter();
    let runner = TaskRunner::builder()
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(50))
        .register(&def)
        .build()
        .unwrap();
    let run = runner.submit(&def, 1).await.unwrap();
    let id = run.id();
    let mut events = runner.run_events(id);
    let mut seen = Vec::new();
    // Tailing: the `Waiting` arrives while the run waits (nothing has signalled it yet).
    within("the Waiting event", async {
        loop {
            let event = events.next().await.unwrap().unwrap();
            let waiting = event.kind == RunEventKind::Status(RunStatus::Waiting);
            seen.push(event);
            if waiting {
                break;
            }
        }
    })
    .await;
    assert_eq!(
        runner.run_info(id).await.unwrap().unwrap().status,
        RunStatus::Waiting
    );
    runner.signal(id, "go", &41_u32).await.unwrap();
    seen.extend(within("the rest", events.map(|e| e.unwrap()).collect::<Vec<_>>()).await);
    assert_eq!(within("the run", run).await.unwrap(), 42);
    assert_eq!(
        story(&seen),
        [
            "Running",
            "before",
            "Waiting",
            "Running",
            "after",
            "Completed"
        ],
        "{seen:#?}"
    );
    let offsets: Vec<u64> = seen.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, (0..seen.len() as u64).collect::<Vec<_>>());
    runner.shutdown().await;
}

async fn a_wait_that_finds_its_signal_records_no_wait(db: TestDb) {
    let def = waiter();
    let runner = TaskRunner::builder()
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(50))
        .register(&def)
        .build()
        .unwrap();
    // Signalled before any process claims it.
    let idle = TaskRunner::builder()
        .store(db.store.clone())
        .build()
        .unwrap();
    let run = idle.submit(&def, 1).await.unwrap();
    idle.signal(run.id(), "go", &1_u32).await.unwrap();
    let id = run.id();
    let handle = runner.run_handle::<u32>(id).unwrap();
    assert_eq!(within("the run", handle).await.unwrap(), 2);
    let seen = within(
        "the stream",
        runner
            .run_events(id)
            .map(|e| e.unwrap())
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(
        story(&seen),
        ["Running", "before", "after", "Completed"],
        "{seen:#?}"
    );
    runner.shutdown().await;
    idle.shutdown().await;
}

conformance!(
    a_parked_run_records_waiting_then_its_resume,
    a_wait_that_finds_its_signal_records_no_wait,
);
