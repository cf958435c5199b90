//! Defects of waiting runs found in review (issue 19), each on both backends: a join of a run
//! that is not a child, a join_all with a repeated handle, cascade cancel racing a child's
//! park, two concurrent waits in one run, and a retried run that was cancelled while it
//! waited.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

#[macro_use]
mod store_support;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use store_support::{eventually, Place, TestDb};
use taskrunner::{QueueConfig, RunHandle, RunId, RunStatus, TaskContext, TaskDef, TaskRunner};

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
            let _: Option<bool> = ctx
                .wait_for_signal("go", DAY)
                .await
                .map_err(|e| e.to_string())?;
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
            let h: RunHandle<u32> = c
                .get()
                .unwrap()
                .run_handle(other.to_string().parse::<RunId>().unwrap())
                .unwrap();
            ctx.join(h).await.map_err(|e| e.to_string())
        })
    })
    .queue("agents");
    let leaf = leaf();
    let runner = builder(&db)
        .register(&leaf)
        .register(&parent)
        .build()
        .unwrap();
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
    eventually(
        Duration::from_secs(10),
        "the joined run completes",
        || async { status(&runner, other_id).await == RunStatus::Completed },
    )
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
    let runner = builder(&db)
        .register(&leaf)
        .register(&parent)
        .build()
        .unwrap();
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

/// PostgreSQL: cascade cancel catches a child that parks while it runs (two statements,
/// cancel pending then flag running, let it escape both). Statement 1 is held up on a locked sibling row
/// while the running child parks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_cascade_cancel_catches_a_child_that_parks_meanwhile() {
    use sqlx::Connection as _;
    let Some(db) = TestDb::pg().await else { return };
    let Place::Pg { url, .. } = &db.place else {
        unreachable!()
    };
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = Arc::clone(&gate);
    let gated = TaskDef::new("gated", move |ctx: TaskContext, _: u32| -> Out<u32> {
        let g = Arc::clone(&g);
        Box::pin(async move {
            ctx.step("enter", || async { Ok::<_, String>(()) })
                .await
                .map_err(|e| e.to_string())?;
            g.notified().await;
            let _: Option<bool> = ctx
                .wait_for_signal("go", DAY)
                .await
                .map_err(|e| e.to_string())?;
            Ok(2)
        })
    })
    .queue("agents");
    let leaf = leaf();
    let (l, gd) = (leaf.clone(), gated.clone());
    let root = TaskDef::new("root", move |ctx: TaskContext, _: u32| -> Out<u32> {
        let (l, gd) = (l.clone(), gd.clone());
        Box::pin(async move {
            let a: RunHandle<u32> = ctx.spawn(&l, 1).await.map_err(|e| e.to_string())?;
            let b: RunHandle<u32> = ctx.spawn(&gd, 0).await.map_err(|e| e.to_string())?;
            let all = ctx.join_all(vec![a, b]).await;
            Ok(all.len() as u32)
        })
    })
    .queue("agents");
    let runner = builder(&db)
        .register(&leaf)
        .register(&gated)
        .register(&root)
        .build()
        .unwrap();
    let r = runner.submit(&root, 0).await.unwrap();
    let rid = r.id();
    eventually(Duration::from_secs(10), "root waiting", || async {
        status(&runner, rid).await == RunStatus::Waiting
    })
    .await;
    let kids = runner
        .list_runs(taskrunner::RunFilter::new().parent(rid))
        .await
        .unwrap();
    let c1 = kids.iter().find(|k| k.name == "leaf").unwrap().id;
    let c2 = kids.iter().find(|k| k.name == "gated").unwrap().id;
    eventually(
        Duration::from_secs(10),
        "c1 waiting, c2 running",
        || async {
            status(&runner, c1).await == RunStatus::Waiting
                && status(&runner, c2).await == RunStatus::Running
        },
    )
    .await;
    // Hold c1's row so that cascade cancel's first statement blocks on it.
    let mut lock = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query("SELECT 1 FROM taskrunner_runs WHERE id = $1 FOR UPDATE")
        .bind(c1.as_i64())
        .execute(&mut lock)
        .await
        .unwrap();
    let rc = runner.clone();
    let cancel = tokio::spawn(async move { rc.cancel_run(rid).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    gate.notify_one();
    // c2 parks while the cancel is held up, unless the cancel already flagged its row (then
    // its park is fenced): either way it must end cancelled.
    for _ in 0..30 {
        if status(&runner, c2).await == RunStatus::Waiting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sqlx::query("COMMIT").execute(&mut lock).await.unwrap();
    let _ = cancel.await;
    for _ in 0..100 {
        if status(&runner, c2).await == RunStatus::Cancelled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s1 = status(&runner, c1).await;
    let s2 = status(&runner, c2).await;
    runner.shutdown().await;
    assert_eq!(s1, RunStatus::Cancelled);
    assert_eq!(
        s2,
        RunStatus::Cancelled,
        "a child of a cancelled run is left {s2:?}"
    );
}

/// Waiting for either of two signals at once (`select!`): a run parks for one thing at a
/// time, so the second wait fails with a clear error instead of the run hanging with the
/// other signal ignored.
async fn two_waits_at_once_fail_clearly(db: TestDb) {
    let def = TaskDef::new("either", |ctx: TaskContext, _: u32| -> Out<String> {
        Box::pin(async move {
            tokio::select! {
                v = ctx.wait_for_signal::<bool>("approve", DAY) => {
                    Ok(format!("approve {:?}", v.map_err(|e| e.to_string())?))
                }
                v = ctx.wait_for_signal::<bool>("reject", DAY) => {
                    Ok(format!("reject {:?}", v.map_err(|e| e.to_string())?))
                }
            }
        })
    })
    .queue("agents");
    let runner = builder(&db).register(&def).build().unwrap();
    let run = runner.submit(&def, 0).await.unwrap();
    let id = run.id();
    let got = tokio::time::timeout(Duration::from_secs(30), run).await;
    let info = runner.run_info(id).await.unwrap().unwrap();
    runner.shutdown().await;
    let Ok(Err(e)) = &got else {
        panic!("expected the run to fail: {got:?} ({:?})", info.status)
    };
    assert!(
        e.to_string().contains("one wait at a time in a run"),
        "unclear error: {e}"
    );
    assert_eq!(info.status, RunStatus::Failed);
}

/// A run cancelled while it waited and then retried (`retry_run`) waits for nothing: it is
/// `Pending`, claimable in priority order, not shown `Waiting` with its old wait.
async fn a_retried_run_cancelled_while_waiting_waits_for_nothing(db: TestDb) {
    let def = leaf().queue("agents");
    let worker = builder(&db).register(&def).build().unwrap();
    let id = worker.submit(&def, 7).await.unwrap().id();
    eventually(Duration::from_secs(30), "the run to wait", || async {
        status(&worker, id).await == RunStatus::Waiting
    })
    .await;
    worker.shutdown().await;
    let admin = TaskRunner::builder()
        .store(db.store.clone())
        .build()
        .unwrap();
    assert!(admin.cancel_run(id).await.unwrap());
    assert_eq!(status(&admin, id).await, RunStatus::Cancelled);
    assert!(admin.retry_run(id).await.unwrap());
    let info = admin.run_info(id).await.unwrap().unwrap();
    assert_eq!((info.status, info.waiting_for), (RunStatus::Pending, None));
    // Its stored wait is gone too (it is not in the waiting runs' index): marked through
    // the one column a run's info shows that nothing else here changes.
    db.execute("UPDATE taskrunner_runs SET priority = 42 WHERE wait_kind IS NOT NULL")
        .await;
    assert_ne!(admin.run_info(id).await.unwrap().unwrap().priority, 42);
    admin.shutdown().await;
}

conformance!(
    join_of_a_run_that_is_not_a_child_wakes,
    join_all_with_a_repeated_handle_wakes,
    two_waits_at_once_fail_clearly,
    a_retried_run_cancelled_while_waiting_waits_for_nothing,
);
