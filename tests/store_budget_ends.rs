//! A charge made by an attempt that ends abruptly (a panic, a timeout) is stored before the
//! run's end: the attempt's future is dropped before it can wait for its own writes, and a
//! charge that reached the store after the end was refused (the run was no longer running),
//! so the units it spent were missing from the run's `charged` and from the queue's window.
//! Both backends.
#![cfg(all(feature = "sqlite", feature = "postgres", unix))]

#[macro_use]
mod store_support;

use std::time::Duration;

use store_support::TestDb;
use taskrunner::store::RunOptions;
use taskrunner::{Budget, QueueConfig, RunStatus, TaskContext, TaskDef, TaskRunner};

/// Runs of each kind: the write races the end, so one run could pass by luck.
const RUNS: u64 = 12;

type Handler = fn(TaskContext, u64) -> futures::future::BoxFuture<'static, Result<u64, String>>;

fn runner(db: &TestDb, def: &TaskDef<Handler>) -> TaskRunner {
    TaskRunner::builder()
        .queue(
            "llm",
            QueueConfig::new()
                .concurrency(4)
                .global_budget(Budget::new(1_000_000, Duration::from_secs(1))),
        )
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(20))
        .register(def)
        .build()
        .unwrap()
}

/// Submits [`RUNS`] runs of `def` (input `n` charges `n`), waits for their ends, and checks
/// that each ended `status` with its whole charge stored.
async fn each_charge_is_kept(db: &TestDb, def: TaskDef<Handler>, status: RunStatus) {
    let runner = runner(db, &def);
    let mut runs = Vec::new();
    for n in 1..=RUNS {
        let run = runner
            .submit_with(&def, n, RunOptions::new().cost(1))
            .await
            .unwrap();
        runs.push((n, run));
    }
    for (n, run) in runs {
        let id = run.id();
        let ended = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("the run ends");
        assert!(ended.is_err(), "run {n} ended {ended:?}");
        let info = runner.run_info(id).await.unwrap().unwrap();
        assert_eq!(info.status, status, "run {n}");
        assert_eq!(
            (info.cost, info.charged),
            (Some(1), Some(n)),
            "run {n}: its charge was not stored"
        );
    }
    runner.shutdown().await;
}

/// The handler charges its input, then panics at once.
async fn a_charge_just_before_a_panic_is_kept(db: TestDb) {
    fn handler(
        ctx: TaskContext,
        n: u64,
    ) -> futures::future::BoxFuture<'static, Result<u64, String>> {
        Box::pin(async move {
            ctx.charge(n);
            if n > 0 {
                panic!("the tool crashed after the model call");
            }
            Ok(n)
        })
    }
    let def = TaskDef::new("crashy", handler as Handler).queue("llm");
    each_charge_is_kept(&db, def, RunStatus::Failed).await;
}

/// The handler charges its input, then hangs past its timeout.
async fn a_charge_just_before_a_timeout_is_kept(db: TestDb) {
    fn handler(
        ctx: TaskContext,
        n: u64,
    ) -> futures::future::BoxFuture<'static, Result<u64, String>> {
        Box::pin(async move {
            ctx.charge(n);
            std::future::pending::<()>().await;
            Ok(n)
        })
    }
    let def = TaskDef::new("hangs", handler as Handler)
        .queue("llm")
        .timeout(Duration::from_millis(1));
    each_charge_is_kept(&db, def, RunStatus::Failed).await;
}

conformance!(
    a_charge_just_before_a_panic_is_kept,
    a_charge_just_before_a_timeout_is_kept,
);
