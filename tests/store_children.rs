//! Child runs (`spawn`, `join`, `join_all`), cascade cancel, and the due-run query's plan, in
//! the conformance style: SQLite and PostgreSQL (skipped without `TASKRUNNER_PG_URL`).
#![cfg(all(feature = "sqlite", feature = "postgres"))]

#[macro_use]
mod store_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::Connection as _;
use store_support::{eventually, Place, TestDb};
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

/// 1,000 waiting runs: the claim's query, which also finds due waiting runs, reads the claim
/// index, never the whole table.
async fn the_due_run_query_uses_an_index(db: TestDb) {
    let plan = match &db.place {
        Place::Sqlite(path) => {
            db.execute(
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000) \
                 INSERT INTO taskrunner_runs (name, queue, input, scheduled_at, created_at, \
                   wait_kind, wait_signal) \
                 SELECT 'w', 'agents', 'null', 253402300799999, 0, 'signal', 'go' FROM n; \
                 ANALYZE;",
            )
            .await;
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .unwrap();
            // The claim's own selection (src/store/sqlite/claim.rs).
            let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(
                "EXPLAIN QUERY PLAN SELECT id FROM taskrunner_runs WHERE status = 'pending' \
                 AND queue = 'agents' AND scheduled_at <= 1000 \
                 AND name IN (SELECT value FROM json_each('[\"w\"]')) \
                 ORDER BY priority DESC, scheduled_at, id LIMIT 10",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
        }
        Place::Pg { url, .. } => {
            db.execute(
                "INSERT INTO taskrunner_runs (name, queue, input, scheduled_at, created_at, \
                   wait_kind, wait_signal) \
                 SELECT 'w', 'agents', 'null', 253402300799999, 0, 'signal', 'go' \
                 FROM generate_series(1, 1000); \
                 INSERT INTO taskrunner_runs (name, queue, input, scheduled_at, created_at, status) \
                 SELECT 'w', 'agents', 'null', 0, 0, 'completed' FROM generate_series(1, 5000); \
                 ANALYZE taskrunner_runs;",
            )
            .await;
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            // The claim's own selection (src/store/postgres/claim.rs).
            let rows: Vec<(String,)> = sqlx::query_as(
                "EXPLAIN SELECT id FROM taskrunner_runs \
                 WHERE status = 'pending' AND queue = 'agents' \
                   AND scheduled_at <= taskrunner_now_ms() AND name = ANY('{w}') \
                 ORDER BY priority DESC, scheduled_at, id LIMIT 10 FOR UPDATE SKIP LOCKED",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n")
        }
    };
    assert!(
        plan.contains("taskrunner_runs_claim"),
        "the due-run query does not use the claim index:\n{plan}"
    );
    assert!(!plan.contains("Seq Scan"), "{plan}");
}

conformance!(
    parent_and_children_on_one_concurrency_1_queue_complete,
    cancel_cascades_three_levels_deep,
    the_due_run_query_uses_an_index,
);
