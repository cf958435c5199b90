//! PostgreSQL row-lock order between a cancel and a child's end. A child's end locks the
//! child's row, then (through the `taskrunner_runs_child_done` trigger) its waiting
//! parent's; a join locks the children, then the parent. A cancel of the parent used to lock
//! the parent first, then the children: a child ending at that moment deadlocked with it
//! (PostgreSQL aborts one of them after `deadlock_timeout`: the cancel failed, or the
//! child's end did). The cancel now locks the tree highest id first (a child's id is above
//! its parent's: each run after the runs under it), the run last.
//!
//! The child's end is played by hand in a transaction (`T1`), step by step, so the
//! interleaving is exact: `T1` holds the child's row, the cancel starts and must wait, then
//! `T1` writes the parent's row as the trigger would and commits. Skipped without
//! `TASKRUNNER_PG_URL`.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

mod store_support;

use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::Connection as _;
use store_support::{eventually, Place, TestDb};
use taskrunner::{QueueConfig, RunFilter, RunStatus, TaskContext, TaskDef, TaskError, TaskRunner};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_and_a_child_ending_at_once_do_not_deadlock() {
    let Some(db) = TestDb::pg().await else { return };
    let Place::Pg { url, .. } = &db.place else {
        unreachable!("TestDb::pg is PostgreSQL")
    };
    let busy = TaskDef::new("busy", |ctx: TaskContext, _: ()| async move {
        ctx.abort_token().cancelled().await;
        Ok::<_, String>(())
    })
    .queue("agents");
    let b = busy.clone();
    let team = TaskDef::new(
        "team",
        move |ctx: TaskContext, _: ()| -> BoxFuture<'static, Result<(), String>> {
            let b = b.clone();
            Box::pin(async move {
                let child = ctx.spawn(&b, ()).await?;
                ctx.join(child).await.map_err(|e| e.to_string())
            })
        },
    )
    .queue("agents");
    let runner = TaskRunner::builder()
        .queue("agents", QueueConfig::new().concurrency(4))
        .store(db.store.clone())
        .lease(Duration::from_secs(2))
        .poll_interval(Duration::from_millis(50))
        .register(&busy)
        .register(&team)
        .build()
        .unwrap();
    let run = runner.submit(&team, ()).await.unwrap();
    let parent = run.id();
    eventually(LIMIT, "the parent to wait on its running child", || async {
        let children = runner
            .list_runs(RunFilter::new().parent(parent))
            .await
            .unwrap();
        children.len() == 1
            && children[0].status == RunStatus::Running
            && runner.run_info(parent).await.unwrap().unwrap().status == RunStatus::Waiting
    })
    .await;
    let child = runner
        .list_runs(RunFilter::new().parent(parent))
        .await
        .unwrap()[0]
        .id;

    // T1, a child's end in progress: the child's row is held.
    let mut t1 = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut t1).await.unwrap();
    sqlx::query("SELECT 1 FROM taskrunner_runs WHERE id = $1 FOR UPDATE")
        .bind(child.as_i64())
        .execute(&mut t1)
        .await
        .unwrap();

    let canceller = runner.clone();
    let cancel = tokio::spawn(async move { canceller.cancel_run(parent).await });
    let watch = sqlx::PgPool::connect(url).await.unwrap();
    eventually(LIMIT, "the cancel to wait for a row lock", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&watch)
        .await
        .unwrap();
        waiting >= 1
    })
    .await;

    // T1 goes on as the trigger does: it writes the waiting parent's row, then commits.
    let parent_write = sqlx::query(
        "UPDATE taskrunner_runs SET scheduled_at = scheduled_at WHERE id = $1 AND status = 'pending'",
    )
    .bind(parent.as_i64())
    .execute(&mut t1)
    .await;
    let parent_write = parent_write.map(|done| done.rows_affected());
    let commit = sqlx::raw_sql("COMMIT").execute(&mut t1).await;
    assert_eq!(
        parent_write.map_err(|e| e.to_string()),
        Ok(1),
        "the child's end was aborted (it should run first, the parent still waiting)"
    );
    commit.unwrap();
    let cancelled = tokio::time::timeout(LIMIT, cancel)
        .await
        .expect("the cancel to end")
        .unwrap();
    assert_eq!(
        cancelled.map_err(|e| e.to_string()),
        Ok(true),
        "the cancel failed"
    );
    assert!(matches!(
        tokio::time::timeout(LIMIT, run)
            .await
            .expect("the parent to end"),
        Err(TaskError::Cancelled)
    ));
    eventually(LIMIT, "the child to be cancelled", || async {
        runner.run_info(child).await.unwrap().unwrap().status == RunStatus::Cancelled
    })
    .await;
    runner.shutdown().await;
}
