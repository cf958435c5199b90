//! Measures durable steps: a backlog of runs that each take `STEPS` `ctx.step` calls (a
//! stored write each, and a read of the step first), drained at concurrency 8; on SQLite
//! (a file in a temp dir) and on PostgreSQL if `TASKRUNNER_PG_URL` is set (feature
//! `postgres`).
//!
//! Run with `cargo run --release --all-features --example store_steps_bench [runs]`.

use std::time::{Duration, Instant};

use taskrunner::store::{SqliteStore, Store};
use taskrunner::{QueueConfig, RunFilter, RunStatus, TaskContext, TaskDef, TaskRunner};

const CONCURRENCY: usize = 8;
const STEPS: u32 = 10;

async fn bench(label: &str, store: Store, runs: u32) {
    let def = TaskDef::new("stepper", |ctx: TaskContext, n: u32| async move {
        let mut sum = 0u32;
        for i in 0..STEPS {
            sum += ctx
                .step("add", || async move { Ok::<_, String>(n.wrapping_add(i)) })
                .await?;
        }
        Ok::<_, String>(sum)
    })
    .queue("steps");
    let submitter = TaskRunner::builder().store(store.clone()).build().unwrap();
    drop(submitter.submit_many(&def, 0..runs).await.unwrap());
    let t = Instant::now();
    let runner = TaskRunner::builder()
        .queue("steps", QueueConfig::new().concurrency(CONCURRENCY))
        .store(store.clone())
        .register(&def)
        .build()
        .unwrap();
    loop {
        let open = [RunStatus::Pending, RunStatus::Running]
            .into_iter()
            .map(|status| {
                let runner = &runner;
                async move {
                    runner
                        .list_runs(RunFilter::new().status(status).limit(1))
                        .await
                        .unwrap()
                        .len()
                }
            });
        if futures::future::join_all(open).await.iter().sum::<usize>() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain = t.elapsed();
    let failed = runner
        .list_runs(RunFilter::new().status(RunStatus::Failed).limit(1))
        .await
        .unwrap();
    assert!(failed.is_empty(), "a run failed: {failed:?}");
    runner.shutdown().await;
    println!(
        "{label:<8} {runs} runs x {STEPS} steps at c={CONCURRENCY}: {:>7.0} steps/s ({:.2} s)",
        f64::from(runs * STEPS) / drain.as_secs_f64(),
        drain.as_secs_f64(),
    );
}

#[tokio::main]
async fn main() {
    let runs: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    let dir = std::env::temp_dir().join(format!("taskrunner-steps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(dir.join("runs.db")).await.unwrap();
    bench("sqlite", store.into(), runs).await;
    std::fs::remove_dir_all(&dir).unwrap();
    #[cfg(feature = "postgres")]
    postgres(runs).await;
}

#[cfg(feature = "postgres")]
async fn postgres(runs: u32) {
    use sqlx::Connection as _;
    let Ok(admin) = std::env::var("TASKRUNNER_PG_URL") else {
        println!("postgres skipped: set TASKRUNNER_PG_URL");
        return;
    };
    let name = format!("tr_steps_bench_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = match admin.rfind('/') {
        Some(i) => format!("{}/{name}", &admin[..i]),
        None => admin.clone(),
    };
    let store = taskrunner::store::PgStore::connect(&url).await.unwrap();
    bench("postgres", store.clone().into(), runs).await;
    Store::from(store).close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
}
