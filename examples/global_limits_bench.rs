//! How much of a global limit's rate the claims keep on PostgreSQL when the limit binds
//! (issue 22's bench: at least 90%).
//!
//! Two workers (two runners, each with its own connection pool, as two processes would
//! have) claim a backlog of no-op runs from one fresh database, under a queue's
//! `global_rate_limit` of 200 a second, then under a `global_budget` of 20,000 units a
//! second with every run estimated at 100 (the same 200 runs a second). The backlog holds
//! six windows of runs, so the limit binds throughout. The figure: the runs started (their
//! stored start times) in the five windows from the first start, against the five windows'
//! worth the limit allows, and how long the whole backlog's starts spanned.
//!
//! Run with `TASKRUNNER_PG_URL=postgres://... cargo run --release --example
//! global_limits_bench --features postgres` (about 20 seconds).

use std::time::{Duration, UNIX_EPOCH};

use sqlx::Connection as _;
use taskrunner::store::{PgStore, RunFilter, RunOptions, Store};
use taskrunner::{Budget, QueueConfig, RateLimit, TaskContext, TaskDef, TaskRunner};

/// Runs a second, under either limit.
const RATE: u32 = 200;
const WINDOW: Duration = Duration::from_secs(1);
/// Windows measured (the backlog holds one more).
const WINDOWS: u32 = 5;
const COST: u64 = 100;

fn noop(
    queue: &'static str,
) -> TaskDef<impl Fn(TaskContext, u32) -> futures::future::Ready<Result<u32, String>> + Clone> {
    TaskDef::new(queue, |_: TaskContext, n: u32| {
        futures::future::ready(Ok(n))
    })
    .queue(queue)
}

/// The runs started in [`WINDOWS`] windows from the first start, their share of what the
/// limit allows, and the time from the backlog's first start to its last (at best
/// `WINDOWS` windows: the first window's runs start at once).
async fn measure(
    url: &str,
    queue: &'static str,
    config: QueueConfig,
    options: RunOptions,
) -> (u32, f64, Duration) {
    let def = noop(queue);
    let submitter = TaskRunner::builder()
        .queue(queue, config.clone())
        .store(PgStore::connect(url).await.unwrap())
        .build()
        .unwrap();
    let runs = RATE * (WINDOWS + 1);
    let inputs = (0..runs).map(|n| (n, options.clone()));
    let handles = submitter.submit_many_with(&def, inputs).await.unwrap();
    let mut workers = Vec::new();
    for _ in 0..2 {
        workers.push(
            TaskRunner::builder()
                .queue(queue, config.clone().concurrency(64))
                .store(PgStore::connect(url).await.unwrap())
                .register(&def)
                .build()
                .unwrap(),
        );
    }
    for handle in handles {
        tokio::time::timeout(Duration::from_secs(60), handle)
            .await
            .expect("a run never finished")
            .unwrap();
    }
    let infos = submitter
        .list_runs(RunFilter::new().name(queue).limit(runs + 10))
        .await
        .unwrap();
    let mut starts: Vec<u128> = infos
        .iter()
        .map(|i| {
            i.started_at
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis()
        })
        .collect();
    starts.sort_unstable();
    let end = starts[0] + WINDOW.as_millis() * u128::from(WINDOWS);
    let inside = starts.partition_point(|&s| s < end) as u32;
    let span = Duration::from_millis((starts[starts.len() - 1] - starts[0]) as u64);
    for worker in workers {
        worker.shutdown().await;
    }
    submitter.shutdown().await;
    (inside, f64::from(inside) / f64::from(RATE * WINDOWS), span)
}

#[tokio::main]
async fn main() {
    let Ok(admin) = std::env::var("TASKRUNNER_PG_URL") else {
        println!("skipped: set TASKRUNNER_PG_URL to a PostgreSQL server this bench may create a database on");
        return;
    };
    let name = format!("tr_limits_bench_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = match admin.rfind('/') {
        Some(i) => format!("{}/{name}", &admin[..i]),
        None => admin.clone(),
    };
    // Migrate once, before the runners race to.
    Store::from(PgStore::connect(&url).await.unwrap())
        .close()
        .await;
    let rate = QueueConfig::new().global_rate_limit(RateLimit::new(RATE, WINDOW));
    let budget = QueueConfig::new().global_budget(Budget::new(u64::from(RATE) * COST, WINDOW));
    let cases = [
        (
            "rate",
            format!("global_rate_limit {RATE}/s"),
            rate,
            RunOptions::new(),
        ),
        (
            "budget",
            format!("global_budget {}/s, cost {COST}", u64::from(RATE) * COST),
            budget,
            RunOptions::new().cost(COST),
        ),
    ];
    let runs = RATE * (WINDOWS + 1);
    println!(
        "| limit (2 workers, PostgreSQL) | runs started in {WINDOWS} windows | of the limit \
         | {runs} runs' starts spanned (at best {WINDOWS} s) |"
    );
    println!("|---|---:|---:|---:|");
    for (queue, limit, config, options) in cases {
        let (inside, share, span) = measure(&url, queue, config, options).await;
        println!(
            "| {limit} | {inside} of {} | {:.1}% | {:.2} s |",
            RATE * WINDOWS,
            share * 100.0,
            span.as_secs_f64()
        );
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
}
