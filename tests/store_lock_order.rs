//! PostgreSQL row-lock order of a batch of ends: it takes its rows highest id first, the
//! order a cancel takes its tree (each run after the runs under it; see the PostgreSQL
//! `dialect.rs`), whatever the order of its list. Before, it locked in its list's order: a
//! cancel holding one run of the list while waiting for another the batch held deadlocked
//! with it. (The heartbeat's renewal: `src/store/postgres/lock_order_tests.rs`, where its
//! list can be given.)
//!
//! The test holds the lowest run's row in a transaction of its own (`T1`), lets the batch
//! start and wait for it (seen in `pg_stat_activity`), then asks for the highest run's row
//! with `NOWAIT`: it must be held already (taken first), where the list's order would have
//! left it free. No timing decides the outcome: `NOWAIT` answers at once, and `T1` then lets
//! the batch finish. Skipped without `TASKRUNNER_PG_URL`.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

mod store_support;

use std::time::Duration;

use sqlx::Connection as _;
use store_support::{eventually, Place, TestDb};
use taskrunner::store::{Ending, Finish};
use taskrunner::{RunStatus, TaskContext, TaskDef, TaskRunner};

const LIMIT: Duration = Duration::from_secs(30);

/// `T1`: a transaction holding run `id`'s row.
async fn hold(url: &str, id: i64) -> sqlx::PgConnection {
    let mut t1 = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut t1).await.unwrap();
    sqlx::query("SELECT 1 FROM taskrunner_runs WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut t1)
        .await
        .unwrap();
    t1
}

/// Waits until a statement whose text contains `like` waits for a row lock.
async fn until_blocked(url: &str, like: &str) {
    let watch = sqlx::PgPool::connect(url).await.unwrap();
    eventually(LIMIT, "the statement to wait for the held row", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND strpos(query, $1) > 0",
        )
        .bind(like)
        .fetch_one(&watch)
        .await
        .unwrap();
        waiting >= 1
    })
    .await;
    watch.close().await;
}

/// Asks `T1` for run `id`'s row without waiting: whether another transaction holds it.
/// Ends `T1` (its locks released).
async fn held_elsewhere(mut t1: sqlx::PgConnection, id: i64) -> bool {
    let tried = sqlx::query("SELECT 1 FROM taskrunner_runs WHERE id = $1 FOR UPDATE NOWAIT")
        .bind(id)
        .execute(&mut t1)
        .await;
    sqlx::raw_sql("ROLLBACK").execute(&mut t1).await.unwrap();
    match tried {
        Ok(_) => false,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => true,
        Err(e) => panic!("the NOWAIT lock failed otherwise: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_ends_locks_its_runs_highest_id_first() {
    let Some(db) = TestDb::pg().await else { return };
    let Place::Pg { url, .. } = &db.place else {
        unreachable!("TestDb::pg is PostgreSQL")
    };
    let def = TaskDef::new("ends", |_: TaskContext, _: ()| async move {
        Ok::<_, String>(())
    })
    .queue("agents");
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .build()
        .unwrap();
    let low = submitter.submit(&def, ()).await.unwrap().id();
    let high = submitter.submit(&def, ()).await.unwrap().id();
    assert!(low < high);
    let names = vec!["ends".to_owned()];
    let claimed = (db.store)
        .claim("agents", &names, 10, "me", LIMIT, None)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    // The list in ascending order: in its order, the batch would wait at `low` holding
    // nothing.
    let mut batch: Vec<Finish> = (claimed.iter())
        .map(|c| Finish {
            id: c.id,
            token: c.token,
            ending: Ending::Completed,
            output: Some("null".into()),
            error: None,
        })
        .collect();
    batch.sort_by_key(|f| f.id);

    let t1 = hold(url, low.as_i64()).await;
    let store = db.store.clone();
    let ends = tokio::spawn(async move { store.finish(&batch).await });
    until_blocked(url, "json_to_recordset").await;
    let high_held = held_elsewhere(t1, high.as_i64()).await;
    let stored = tokio::time::timeout(LIMIT, ends)
        .await
        .expect("the ends to be stored")
        .unwrap()
        .unwrap();
    assert!(
        high_held,
        "the batch waited for run {low} without holding run {high} (list order, not id order)"
    );
    assert_eq!(stored, [true, true]);
    for id in [low, high] {
        let info = submitter.run_info(id).await.unwrap().unwrap();
        assert_eq!(info.status, RunStatus::Completed);
    }
    submitter.shutdown().await;
}
