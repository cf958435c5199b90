//! Child runs (`spawn`, `join`, `join_all`) and cascade cancel, in
//! the conformance style: SQLite and PostgreSQL (skipped without `TASKRUNNER_PG_URL`).
#![cfg(all(feature = "sqlite", feature = "postgres"))]

#[macro_use]
mod store_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use store_support::{eventually, TestDb};
use taskrunner::{
    QueueConfig, RunFilter, RunHandle, RunStatus, TaskContext, TaskDef, TaskError, TaskRunner,
    WaitingFor,
};

const LIMIT: Duration = Duration::from_secs(30);
const DAY: Duration = Duration::from_secs(86_400);

fn builder(db: &TestDb, concurrency: usize) -> taskrunner::TaskRunnerBuilder {
    TaskRunner::builder()
        .queue("agents", QueueConfig::new().concurrency(concurrency))
        .store(db.store.clone())
        .lease(Duration::from_secs(2))
        .poll_interval(Duration::from_millis(50))
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

type Out<T> = BoxFuture<'static, Result<T, String>>;

// ===== the suite =====

/// A parent and its three children share one concurrency(1) queue: the parent gives its slot
/// back while it joins, so all complete; a replay of the parent spawns nothing twice; a
/// child's failure is a value the parent sees.
async fn parent_and_children_on_one_concurrency_1_queue_complete(db: TestDb) {
    let research = TaskDef::new("research", |_: TaskContext, n: u32| async move {
        if n == 2 {
            Err(format!("no sources for {n}"))
        } else {
            Ok(n * 10)
        }
    })
    .queue("agents");
    let plans = Arc::new(AtomicUsize::new(0));
    let (child, p) = (research.clone(), Arc::clone(&plans));
    let team = TaskDef::new(
        "team",
        move |ctx: TaskContext, n: u32| -> Out<Vec<String>> {
            let (child, p) = (child.clone(), Arc::clone(&p));
            Box::pin(async move {
                ctx.step("plan", || async {
                    p.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(())
                })
                .await?;
                let mut handles: Vec<RunHandle<u32>> = Vec::new();
                for i in 1..=n {
                    handles.push(ctx.spawn(&child, i).await?);
                }
                let results = ctx.join_all(handles).await;
                Ok(results
                    .into_iter()
                    .map(|r| match r {
                        Ok(v) => v.to_string(),
                        Err(TaskError::Failed(e)) => format!("failed: {e}"),
                        Err(e) => format!("other: {e}"),
                    })
                    .collect())
            })
        },
    )
    .queue("agents");
    let runner = builder(&db, 1)
        .register(&research)
        .register(&team)
        .build()
        .unwrap();
    let run = runner.submit(&team, 3).await.unwrap();
    let id = run.id();
    assert_eq!(
        within("the team", run).await.unwrap(),
        vec!["10", "failed: no sources for 2", "30"]
    );
    let children = runner.list_runs(RunFilter::new().parent(id)).await.unwrap();
    assert_eq!(children.len(), 3, "spawned twice on a replay?");
    assert!(children.iter().all(|c| c.parent == Some(id)));
    assert_eq!(plans.load(Ordering::SeqCst), 1);
    let info = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!((info.status, info.attempts), (RunStatus::Completed, 1));
    runner.shutdown().await;
}

/// Cancelling the top of a three-level tree cancels every unfinished run under it: waiting
/// ones at once, a running one through its stored intent.
async fn cancel_cascades_three_levels_deep(db: TestDb) {
    let started = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&started);
    let busy = TaskDef::new("busy", move |ctx: TaskContext, _: ()| {
        let s = Arc::clone(&s);
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            ctx.abort_token().cancelled().await;
            Ok::<_, String>(())
        }
    })
    .queue("agents");
    let listen = TaskDef::new("listen", |ctx: TaskContext, _: ()| async move {
        let _: Option<bool> = ctx.wait_for_signal("never", DAY).await?;
        Ok::<_, String>(())
    })
    .queue("agents");
    let (b, l) = (busy.clone(), listen.clone());
    let mid = TaskDef::new("mid", move |ctx: TaskContext, _: ()| -> Out<()> {
        let (b, l) = (b.clone(), l.clone());
        Box::pin(async move {
            let busy = ctx.spawn(&b, ()).await?;
            let listen = ctx.spawn(&l, ()).await?;
            let _ = ctx.join(busy).await;
            let _ = ctx.join(listen).await;
            Ok(())
        })
    })
    .queue("agents");
    let m = mid.clone();
    let top = TaskDef::new("top", move |ctx: TaskContext, _: ()| -> Out<()> {
        let m = m.clone();
        Box::pin(async move {
            let mid = ctx.spawn(&m, ()).await?;
            ctx.join(mid).await.map_err(|e| e.to_string())
        })
    })
    .queue("agents");
    let runner = builder(&db, 4)
        .register(&busy)
        .register(&listen)
        .register(&mid)
        .register(&top)
        .build()
        .unwrap();
    let run = runner.submit(&top, ()).await.unwrap();
    let id = run.id();
    let tree = |runner: TaskRunner| async move {
        let mids = runner.list_runs(RunFilter::new().parent(id)).await.unwrap();
        let mut all = mids.clone();
        for m in &mids {
            all.extend(
                runner
                    .list_runs(RunFilter::new().parent(m.id))
                    .await
                    .unwrap(),
            );
        }
        all
    };
    eventually(LIMIT, "the tree to be waiting and busy", || async {
        let all = tree(runner.clone()).await;
        let waiting = all
            .iter()
            .filter(|r| r.status == RunStatus::Waiting)
            .count();
        all.len() == 3
            && waiting == 2
            && started.load(Ordering::SeqCst) == 1
            && runner.run_info(id).await.unwrap().unwrap().status == RunStatus::Waiting
    })
    .await;
    let top_info = runner.run_info(id).await.unwrap().unwrap();
    assert_eq!(top_info.waiting_for, Some(WaitingFor::Children { left: 1 }));
    assert!(runner.cancel_run(id).await.unwrap());
    assert!(matches!(
        within("the top", run).await,
        Err(TaskError::Cancelled)
    ));
    eventually(LIMIT, "every run under it to be cancelled", || async {
        tree(runner.clone())
            .await
            .iter()
            .all(|r| r.status == RunStatus::Cancelled)
    })
    .await;
    runner.shutdown().await;
}

conformance!(
    parent_and_children_on_one_concurrency_1_queue_complete,
    cancel_cascades_three_levels_deep,
);
