//! Defects of waiting runs found in review (issue 19), each on both backends: a join of a run
//! that is not a child, a join_all with a repeated handle, cascade cancel racing a child's
//! park, and two concurrent waits in one run.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

#[macro_use]
mod store_support;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use store_support::{eventually, TestDb};
use taskrunner::{
    QueueConfig, RunHandle, RunId, RunStatus, TaskContext, TaskDef, TaskRunner,
};

const DAY: Duration = Duration::from_secs(86_400);
type Out<T> = BoxFuture<'static, Result<T, String>>;

fn builder(db: &TestDb) -> taskrunner::TaskRunnerBuilder {
    TaskRunner::builder()
        .queue("agents", QueueConfig::new().concurrency(4))
        .store(db.store.clone())
        .lease(Duration::from_secs(2))
        .poll_interval(Duration::from_millis(50))
}

async fn status(runner: &TaskRunner, id: RunId) -> RunStatus {
    runner.run_info(id).await.unwrap().unwrap().status
}

fn leaf() -> TaskDef<impl Fn(TaskContext, u32) -> Out<u32> + Clone> {
    TaskDef::new("leaf", |ctx: TaskContext, n: u32| -> Out<u32> {
        Box::pin(async move {
            let _: Option<bool> = ctx.wait_for_signal("go", DAY).await.map_err(|e| e.to_string())?;
            Ok(n)
        })
    })
    .queue("agents")
}

/// `join` documents "a child from spawn, or any run": joining a run that is not this run's
/// child parks the parent until a child count that nothing counts down.
async fn join_of_a_run_that_is_not_a_child_wakes(db: TestDb) {
    let cell: Arc<OnceLock<TaskRunner>> = Arc::new(OnceLock::new());
    let c = Arc::clone(&cell);
    let parent = TaskDef::new("parent", move |ctx: TaskContext, other: i64| -> Out<u32> {
        let c = Arc::clone(&c);
        Box::pin(async move {
            let h: RunHandle<u32> = c.get().unwrap().run_handle(other.to_string().parse::<RunId>().unwrap()).unwrap();
            ctx.join(h).await.map_err(|e| e.to_string())
        })
    })
    .queue("agents");
    let leaf = leaf();
    let runner = builder(&db).register(&leaf).register(&parent).build().unwrap();
    let _ = cell.set(runner.clone());
    let other = runner.submit(&leaf, 7).await.unwrap();
    let other_id = other.id();
    let p = runner.submit(&parent, other_id.as_i64()).await.unwrap();
    let pid = p.id();
    eventually(Duration::from_secs(10), "parent waiting", || async {
        status(&runner, pid).await == RunStatus::Waiting
    })
    .await;
    runner.signal(other_id, "go", &true).await.unwrap();
    eventually(Duration::from_secs(10), "the joined run completes", || async {
        status(&runner, other_id).await == RunStatus::Completed
    })
    .await;
    let got = tokio::time::timeout(Duration::from_secs(10), p).await;
    let info = runner.run_info(pid).await.unwrap().unwrap();
    runner.shutdown().await;
    assert!(
        matches!(got, Ok(Ok(7))),
        "parent never resumed: {:?} / {:?}",
        info.status,
        info.waiting_for
    );
}

/// `join_all` with the same run twice parks with "2 left"; the child's end counts down once.
async fn join_all_with_a_repeated_handle_wakes(db: TestDb) {
    let cell: Arc<OnceLock<TaskRunner>> = Arc::new(OnceLock::new());
    let c = Arc::clone(&cell);
    let leaf = leaf();
    let l = leaf.clone();
    let parent = TaskDef::new("parent", move |ctx: TaskContext, _: u32| -> Out<u32> {
        let (c, l) = (Arc::clone(&c), l.clone());
        Box::pin(async move {
            let h: RunHandle<u32> = ctx.spawn(&l, 5).await.map_err(|e| e.to_string())?;
            let again: RunHandle<u32> = c.get().unwrap().run_handle(h.id()).unwrap();
            let all = ctx.join_all(vec![h, again]).await;
            Ok(all.into_iter().map(|r| r.unwrap_or(0)).sum())
        })
    })
    .queue("agents");
    let runner = builder(&db).register(&leaf).register(&parent).build().unwrap();
    let _ = cell.set(runner.clone());
    let p = runner.submit(&parent, 0).await.unwrap();
    let pid = p.id();
    eventually(Duration::from_secs(10), "parent waiting", || async {
        status(&runner, pid).await == RunStatus::Waiting
    })
    .await;
    let child = runner
        .list_runs(taskrunner::RunFilter::new().parent(pid))
        .await
        .unwrap()[0]
        .id;
    runner.signal(child, "go", &true).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), p).await;
    let info = runner.run_info(pid).await.unwrap().unwrap();
    runner.shutdown().await;
    assert!(
        matches!(got, Ok(Ok(10))),
        "parent never resumed: {:?} / {:?}",
        info.status,
        info.waiting_for
    );
}

conformance!(
    join_of_a_run_that_is_not_a_child_wakes,
    join_all_with_a_repeated_handle_wakes,
);
