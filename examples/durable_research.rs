//! Durable research runs on SQLite: they survive a crash of the process running them.
//!
//! A first "process" submits five research runs to `runs.db` and starts on them, then
//! crashes mid-run (its runtime is dropped: nothing is released, its heartbeats stop). A
//! second process opens the same file, recovers the runs whose lease expired, finishes them,
//! and polls each by id.
//!
//! Run with `cargo run --example durable_research` (a few seconds).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use taskrunner::store::SqliteStore;
use taskrunner::{
    QueueConfig, RetryPolicy, RunId, TaskContext, TaskDef, TaskRunner, TaskRunnerBuilder,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Request {
    topic: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Report {
    topic: String,
    summary: String,
}

type Handler =
    fn(TaskContext, Request) -> futures::future::BoxFuture<'static, Result<Report, String>>;
type Research = TaskDef<Handler>;

/// The agent's research action: a few slow "searches", with progress.
fn search(
    ctx: TaskContext,
    req: Request,
) -> futures::future::BoxFuture<'static, Result<Report, String>> {
    Box::pin(async move {
        for step in 1..=3 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            ctx.set_progress(step as f32 * 33.3, format!("search {step}/3"));
        }
        Ok(Report {
            summary: format!("{} sources on {}", req.topic.len() * 3, req.topic),
            topic: req.topic,
        })
    })
}

fn research() -> Research {
    TaskDef::new("research", search as Handler)
        .queue("agents")
        .retry(RetryPolicy::exponential(Duration::from_millis(100)).max_retries(2))
}

fn builder(store: SqliteStore, def: &Research) -> TaskRunnerBuilder {
    TaskRunner::builder()
        .queue("agents", QueueConfig::new().concurrency(3))
        .store(store)
        .register(def)
        .lease(Duration::from_secs(1)) // short, so that recovery shows within the demo
        .poll_interval(Duration::from_millis(100))
}

/// The first process: submits, starts, and crashes 400 ms in.
fn first_process(db: std::path::PathBuf) -> Vec<RunId> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ids = rt.block_on(async {
        let def = research();
        let runner = builder(SqliteStore::open(&db).await.unwrap(), &def)
            .build()
            .unwrap();
        let topics = ["tokio", "sqlite", "leases", "fencing", "retries"];
        let runs = runner
            .submit_many(&def, topics.map(|t| Request { topic: t.into() }))
            .await
            .unwrap();
        let ids: Vec<RunId> = runs.iter().map(|r| r.id()).collect();
        let shown: Vec<String> = ids.iter().map(ToString::to_string).collect();
        println!("process 1: submitted runs {}; working...", shown.join(", "));
        tokio::time::sleep(Duration::from_millis(400)).await;
        std::mem::forget(runner); // no shutdown: this process is about to die
        ids
    });
    println!("process 1: crashed mid-run (runtime dropped; nothing released)");
    rt.shutdown_background();
    ids
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("taskrunner-durable-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("runs.db");

    let ids = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || first_process(db)).await?
    };

    // The second process: same file, same definition.
    let def = research();
    let runner = builder(SqliteStore::open(&db).await?, &def).build()?;
    for id in &ids {
        let info = runner.run_info(*id).await?.expect("the run is stored");
        println!(
            "process 2: run {id} found {:?} (attempts {})",
            info.status, info.attempts
        );
    }
    println!("process 2: waiting for the lost runs' leases to expire, then running them");
    for id in &ids {
        let report: Report = runner.run_handle(*id)?.await?;
        let info = runner.run_info(*id).await?.expect("the run is stored");
        println!(
            "process 2: run {id} {:?} after {} attempt(s): {}",
            info.status, info.attempts, report.summary
        );
    }
    runner.shutdown().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
