//! A waiting run resumes when what it waits for happens, not at its claimer's next poll: the
//! poll interval here is an hour, so only a wake-up can resume the runs within the bound.
//! A child's end wakes the claimers of its joiner's queue (another queue), a signal those
//! of the run's queue, a cancelled child its joiner. Both backends.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

#[macro_use]
mod store_support;

use std::time::Duration;

use futures::future::BoxFuture;
use store_support::{eventually, TestDb};
use taskrunner::{QueueConfig, RunStatus, TaskContext, TaskDef, TaskError, TaskRunner};

/// Generous for a busy machine, and far below the poll interval.
const LIMIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

type Out<T> = BoxFuture<'static, Result<T, String>>;

fn builder(db: &TestDb) -> taskrunner::TaskRunnerBuilder {
    TaskRunner::builder()
        .queue("parents", QueueConfig::new().concurrency(1))
        .queue("children", QueueConfig::new().concurrency(1))
        .store(db.store.clone())
        .poll_interval(POLL)
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {LIMIT:?}: it waited for a poll"))
}

/// A parent on queue `parents` joins a child on queue `children` that waits for signal `go`,
/// then waits for signal `done` itself.
async fn a_parent_resumes_when_its_child_on_another_queue_ends(db: TestDb) {
    let child = TaskDef::new("child", |ctx: TaskContext, n: u32| -> Out<u32> {
        Box::pin(async move {
            let go: Option<u32> = ctx.wait_for_signal("go", DAY).await?;
            Ok(n + go.unwrap_or(0))
        })
    })
    .queue("children");
    let c = child.clone();
    let parent = TaskDef::new("parent", move |ctx: TaskContext, n: u32| -> Out<String> {
        let c = c.clone();
        Box::pin(async move {
            let handle = ctx.spawn(&c, n).await?;
            let got = ctx.join(handle).await;
            let done: Option<String> = ctx.wait_for_signal("done", DAY).await?;
            Ok(format!("{got:?} {done:?}"))
        })
    })
    .queue("parents");
    let runner = builder(&db)
        .register(&child)
        .register(&parent)
        .build()
        .unwrap();
    let run = runner.submit(&parent, 1).await.unwrap();
    let id = run.id();
    let child_id = within("the child to wait", async {
        loop {
            let kids = runner
                .list_runs(taskrunner::RunFilter::new().parent(id))
                .await
                .unwrap();
            if let Some(kid) = kids.first() {
                if kid.status == RunStatus::Waiting {
                    break kid.id;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    eventually(LIMIT, "the parent to wait for its child", || async {
        runner.run_info(id).await.unwrap().unwrap().status == RunStatus::Waiting
    })
    .await;
    // The child resumes on the signal, ends; its end wakes the parent's queue.
    runner.signal(child_id, "go", &41_u32).await.unwrap();
    eventually(
        LIMIT,
        "the parent to resume and wait for `done`",
        || async {
            let info = runner.run_info(id).await.unwrap().unwrap();
            info.status == RunStatus::Waiting
                && matches!(
                    info.waiting_for,
                    Some(taskrunner::WaitingFor::Signal { .. })
                )
        },
    )
    .await;
    runner.signal(id, "done", &"yes").await.unwrap();
    assert_eq!(
        within("the parent to end", run).await.unwrap(),
        "Ok(42) Some(\"yes\")"
    );
    runner.shutdown().await;
}

/// Cancelling the child a parent joins makes the parent due: it resumes at once and sees
/// the cancel as a value.
async fn a_parent_resumes_when_its_child_is_cancelled(db: TestDb) {
    let child = TaskDef::new("child", |ctx: TaskContext, _: u32| -> Out<u32> {
        Box::pin(async move {
            let go: Option<u32> = ctx.wait_for_signal("go", DAY).await?;
            Ok(go.unwrap_or(0))
        })
    })
    .queue("children");
    let c = child.clone();
    let parent = TaskDef::new("parent", move |ctx: TaskContext, n: u32| -> Out<String> {
        let c = c.clone();
        Box::pin(async move {
            let handle = ctx.spawn(&c, n).await?;
            Ok(match ctx.join(handle).await {
                Err(TaskError::Cancelled) => "child cancelled".to_owned(),
                other => format!("{other:?}"),
            })
        })
    })
    .queue("parents");
    let runner = builder(&db)
        .register(&child)
        .register(&parent)
        .build()
        .unwrap();
    let run = runner.submit(&parent, 1).await.unwrap();
    let id = run.id();
    eventually(LIMIT, "the parent to wait for its child", || async {
        runner.run_info(id).await.unwrap().unwrap().status == RunStatus::Waiting
    })
    .await;
    let kids = runner
        .list_runs(taskrunner::RunFilter::new().parent(id))
        .await
        .unwrap();
    assert!(runner.cancel_run(kids[0].id).await.unwrap());
    assert_eq!(
        within("the parent to end", run).await.unwrap(),
        "child cancelled"
    );
    runner.shutdown().await;
}

conformance!(
    a_parent_resumes_when_its_child_on_another_queue_ends,
    a_parent_resumes_when_its_child_is_cancelled,
);
