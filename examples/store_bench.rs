//! Measures the durable store: draining 10,000 no-op runs at concurrency 8, one-at-a-time
//! enqueue-to-completion latency, and `submit_many` throughput; and for waiting runs, the
//! latency from `runner.signal` to the resumed handler and the drain rate of runs that each
//! wait once for a signal sent by another task (up to 64 signals in flight; `claim_ahead`
//! 248, as in the fastest drain above; at concurrency 8, then 64); on SQLite (a file in a temp dir,
//! `synchronous = FULL`) and on PostgreSQL if `TASKRUNNER_PG_URL` is set.
//!
//! Run streams (`streams`): stored-emit throughput within one run, and emit → delivered
//! latency to a reader in another process (this binary, re-invoked), on both backends.
//!
//! Run with `cargo run --release --all-features --example store_bench [sqlite|postgres|streams|waits] [runs]`
//! (`waits`: only the waiting runs' figures, on both backends).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use taskrunner::store::{PgStore, SqliteStore, Store};
use taskrunner::{QueueConfig, RunFilter, RunStatus, TaskContext, TaskDef, TaskRunner};

#[path = "shared/stream_bench.rs"]
mod streams;

const CONCURRENCY: usize = 8;
const LATENCY_SAMPLES: usize = 300;
/// Signals in flight at once in the waits' drain.
const SENDERS: usize = 64;

type Noop = TaskDef<fn(TaskContext, u32) -> futures::future::Ready<Result<u32, String>>>;

fn noop_handler(_: TaskContext, n: u32) -> futures::future::Ready<Result<u32, String>> {
    futures::future::ready(Ok(n))
}

fn noop() -> Noop {
    TaskDef::new("noop", noop_handler as fn(_, _) -> _).queue("bench")
}

/// `ahead`: `claim_ahead(n)`, or `None` for the default adaptive read-ahead.
async fn worker(store: Store, def: &Noop, ahead: Option<usize>) -> TaskRunner {
    let builder = TaskRunner::builder()
        .queue("bench", QueueConfig::new().concurrency(CONCURRENCY))
        .store(store)
        .register(def);
    match ahead {
        Some(n) => builder.claim_ahead(n),
        None => builder,
    }
    .build()
    .unwrap()
}

async fn bench(label: &str, store: Store, runs: u32, ahead: Option<usize>) {
    let def = noop();
    // submit_many: one transaction for the whole batch.
    let submitter = TaskRunner::builder().store(store.clone()).build().unwrap();
    let t = Instant::now();
    let handles = submitter.submit_many(&def, 0..runs).await.unwrap();
    let submit = t.elapsed();
    drop(handles);

    // Drain: a worker starts on the backlog.
    let t = Instant::now();
    let runner = worker(store.clone(), &def, ahead).await;
    loop {
        let open = runner
            .list_runs(RunFilter::new().status(RunStatus::Pending).limit(1))
            .await
            .unwrap()
            .len()
            + runner
                .list_runs(RunFilter::new().status(RunStatus::Running).limit(1))
                .await
                .unwrap()
                .len();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let drain = t.elapsed();

    // Latency: submit one, await its result, repeat.
    let done = Arc::new(AtomicUsize::new(0));
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..LATENCY_SAMPLES {
        let t = Instant::now();
        let out = runner.submit(&def, i as u32).await.unwrap().await.unwrap();
        samples.push(t.elapsed());
        assert_eq!(out, i as u32);
        done.fetch_add(1, Ordering::Relaxed);
    }
    samples.sort();
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    runner.shutdown().await;
    println!(
        "{label:<8} ahead {:<8} submit_many {runs}: {:>8.0} runs/s | drain {runs} at c={CONCURRENCY}: {:>7.0} runs/s ({:.2} s) | latency p50 {:.2} ms, p99 {:.2} ms",
        ahead.map_or("adaptive".to_owned(), |n| n.to_string()),
        f64::from(runs) / submit.as_secs_f64(),
        f64::from(runs) / drain.as_secs_f64(),
        drain.as_secs_f64(),
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3,
    );
}

type Waiter =
    TaskDef<fn(TaskContext, u32) -> futures::future::BoxFuture<'static, Result<u32, String>>>;

/// When each waiter's handler got past its wait, by input.
fn resumed() -> &'static Mutex<HashMap<u32, Instant>> {
    static RESUMED: OnceLock<Mutex<HashMap<u32, Instant>>> = OnceLock::new();
    RESUMED.get_or_init(Default::default)
}

fn waiter() -> Waiter {
    fn handler(
        ctx: TaskContext,
        n: u32,
    ) -> futures::future::BoxFuture<'static, Result<u32, String>> {
        Box::pin(async move {
            let got: Option<u32> = ctx.wait_for_signal("go", Duration::from_secs(3600)).await?;
            resumed().lock().unwrap().insert(n, Instant::now());
            Ok(got.unwrap_or(0))
        })
    }
    TaskDef::new("waiter", handler as fn(_, _) -> _).queue("bench")
}

async fn bench_waits(label: &str, store: Store, runs: u32, concurrency: usize) {
    let def = waiter();
    let runner = TaskRunner::builder()
        .queue("bench", QueueConfig::new().concurrency(concurrency))
        .store(store)
        .register(&def)
        .poll_interval(Duration::from_millis(100))
        .claim_ahead(248)
        .build()
        .unwrap();
    // Signal -> resumed handler, one run at a time.
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..LATENCY_SAMPLES as u32 {
        let n = 1_000_000 + i;
        let run = runner.submit(&def, n).await.unwrap();
        while runner.run_info(run.id()).await.unwrap().unwrap().status != RunStatus::Waiting {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let t = Instant::now();
        runner.signal(run.id(), "go", &1_u32).await.unwrap();
        run.await.unwrap();
        let at = resumed().lock().unwrap()[&n];
        samples.push(at.duration_since(t));
    }
    samples.sort();
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    // Drain: runs that each wait once for a signal another task sends.
    let t = Instant::now();
    let handles = runner.submit_many(&def, 0..runs).await.unwrap();
    let ids: Vec<_> = handles.iter().map(|h| h.id()).collect();
    let sender = runner.clone();
    let signals = tokio::spawn(async move {
        // As a service answers approvals: many requests at once (up to SENDERS in flight).
        futures::StreamExt::for_each_concurrent(futures::stream::iter(ids), SENDERS, |id| {
            let sender = sender.clone();
            async move { sender.signal(id, "go", &1_u32).await.unwrap() }
        })
        .await;
    });
    for h in handles {
        h.await.unwrap();
    }
    signals.await.unwrap();
    let drain = t.elapsed();
    runner.shutdown().await;
    println!(
        "{label:<8} waits c={concurrency:<3}: signal -> resumed handler p50 {:.2} ms, p99 {:.2} ms | {runs} runs each waiting once for a signal: {:>7.0} runs/s ({:.2} s)",
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3,
        f64::from(runs) / drain.as_secs_f64(),
        drain.as_secs_f64(),
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(streams::READER_ARG) {
        return streams::reader_child(&args[1..]).await;
    }
    let only = args.first().map(String::as_str).unwrap_or("all");
    let runs: u32 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    if only == "all" || only == "sqlite" || only == "streams" || only == "waits" {
        let dir = std::env::temp_dir().join(format!("taskrunner-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteStore::open(dir.join("runs.db")).await.unwrap();
        if only != "streams" && only != "waits" {
            for ahead in [Some(0), None, Some(248)] {
                bench("sqlite", store.clone().into(), runs, ahead).await;
            }
        }
        if only == "all" || only == "streams" {
            let locator = format!("sqlite:{}", dir.join("runs.db").display());
            streams::bench("sqlite", store.clone().into(), &locator).await;
        }
        if only == "all" || only == "waits" {
            for concurrency in [CONCURRENCY, 64] {
                bench_waits("sqlite", store.clone().into(), runs.min(2_000), concurrency).await;
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    if only == "all" || only == "postgres" || only == "streams" || only == "waits" {
        let Ok(admin) = std::env::var("TASKRUNNER_PG_URL") else {
            println!("postgres   skipped: set TASKRUNNER_PG_URL");
            return;
        };
        let name = format!("tr_bench_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = match admin.rfind('/') {
            Some(i) => format!("{}/{name}", &admin[..i]),
            None => admin.clone(),
        };
        let store = PgStore::connect(&url).await.unwrap();
        if only != "streams" && only != "waits" {
            for ahead in [Some(0), None, Some(248)] {
                bench("postgres", store.clone().into(), runs, ahead).await;
            }
        }
        if only == "all" || only == "streams" {
            streams::bench("postgres", store.clone().into(), &url).await;
        }
        if only == "all" || only == "waits" {
            for concurrency in [CONCURRENCY, 64] {
                bench_waits(
                    "postgres",
                    store.clone().into(),
                    runs.min(2_000),
                    concurrency,
                )
                .await;
            }
        }
        Store::from(store).close().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}
