//! The heartbeat's renewal takes its runs' rows in the lock order (highest id first, see
//! `dialect.rs`), whatever the order of its list: with the list in ascending order, it
//! must hold the highest run while it waits for the lowest, which another transaction
//! (`T1`) holds. `T1` asks for the highest with `NOWAIT` once the renewal waits (seen in
//! `pg_stat_activity`): no timing decides the outcome. Before, the renewal locked in its
//! list's order and waited holding nothing. Skipped without `TASKRUNNER_PG_URL`.

use std::time::Duration;

use sqlx::Connection as _;

use super::PgStore;
use crate::store::RunId;

/// `admin` with its database replaced by `name`.
fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
    let (server, _) = base.rsplit_once('/').unwrap_or((base, ""));
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{server}/{name}{query}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_locks_its_runs_highest_id_first() {
    let Ok(admin) = std::env::var("TASKRUNNER_PG_URL") else {
        eprintln!("skipped: set TASKRUNNER_PG_URL to run the PostgreSQL tests");
        return;
    };
    let name = format!("tr_lock_order_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        let sql = sqlx::AssertSqlSafe(sql);
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
    let url = with_database(&admin, &name);
    let store = PgStore::connect(&url).await.unwrap();
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO taskrunner_runs (name, queue, input, scheduled_at, created_at, status, \
           claim_token, lease_owner, lease_expires_at) \
         SELECT 'beats', 'agents', 'null', 0, 0, 'running', 1, 'me', taskrunner_now_ms() + 60000 \
         FROM generate_series(1, 2) RETURNING id",
    )
    .fetch_all(&store.inner.pool)
    .await
    .unwrap();
    let (low, high) = (ids[0].min(ids[1]), ids[0].max(ids[1]));

    // T1 holds the lowest run.
    let mut t1 = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut t1).await.unwrap();
    sqlx::query("SELECT 1 FROM taskrunner_runs WHERE id = $1 FOR UPDATE")
        .bind(low)
        .execute(&mut t1)
        .await
        .unwrap();
    let beat = store.clone();
    let held = [(RunId::from_i64(low), 1), (RunId::from_i64(high), 1)];
    let renew = tokio::spawn(async move { beat.heartbeat("me", &held, 30_000, false).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND strpos(query, 'SET lease_expires_at') > 0",
        )
        .fetch_one(&store.inner.pool)
        .await
        .unwrap();
        if waiting >= 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewal never waited for T1"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tried = sqlx::query("SELECT 1 FROM taskrunner_runs WHERE id = $1 FOR UPDATE NOWAIT")
        .bind(high)
        .execute(&mut t1)
        .await;
    sqlx::raw_sql("ROLLBACK").execute(&mut t1).await.unwrap();
    let renewed = tokio::time::timeout(Duration::from_secs(30), renew)
        .await
        .expect("the renewal to end")
        .unwrap()
        .unwrap();
    let high_held = match tried {
        Ok(_) => false,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => true,
        Err(e) => panic!("the NOWAIT lock failed otherwise: {e}"),
    };
    t1.close().await.unwrap();
    store.close().await;
    let drop = format!("DROP DATABASE {name} WITH (FORCE)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(
        high_held,
        "the renewal waited for run {low} without holding run {high} (list order, not id order)"
    );
    assert_eq!(renewed.0.len(), 2, "both leases renewed");
}
