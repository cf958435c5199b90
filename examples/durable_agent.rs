//! A research agent whose model and tool calls are durable steps: plan → search ×3 →
//! summarise. The process running it is killed (SIGKILL) after the three searches, while the
//! summary is being written; a new process on the same SQLite file resumes the run at the
//! summary. The plan and the searches (paid calls) are not made again: their stored results
//! are read back.
//!
//! The model and the search tool are simulated (no network). Run with
//! `cargo run --example durable_agent` (a few seconds).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use taskrunner::store::SqliteStore;
use taskrunner::{QueueConfig, RetryPolicy, RunId, TaskContext, TaskDef, TaskRunner};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Hit {
    query: String,
    snippet: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Report {
    question: String,
    summary: String,
    sources: usize,
}

type Handler = fn(TaskContext, String) -> BoxFuture<'static, Result<Report, String>>;

/// The agent: each model call and tool call is one step of the durable run.
fn research(ctx: TaskContext, question: String) -> BoxFuture<'static, Result<Report, String>> {
    Box::pin(async move {
        let queries: Vec<String> = ctx.step("plan", || model_plan(&question)).await?;
        let mut hits = Vec::new();
        for query in &queries {
            // search #0, #1, #2: the n-th call of a name is its n-th step.
            let hit: Hit = ctx.step("search", || web_search(query)).await?;
            hits.push(hit);
        }
        let summary: String = ctx.step("summarise", || model_summarise(&hits)).await?;
        Ok(Report {
            question,
            summary,
            sources: hits.len(),
        })
    })
}

// ===== the simulated model and tool =====

fn say(what: &str) {
    println!("  [pid {}] {what}", std::process::id());
}

async fn model_plan(question: &str) -> Result<Vec<String>, String> {
    say(&format!("model: planning \"{question}\""));
    tokio::time::sleep(Duration::from_millis(150)).await;
    Ok(["history", "current state", "open problems"]
        .iter()
        .map(|aspect| format!("{question}: {aspect}"))
        .collect())
}

/// Search calls made by this process.
static SEARCHES: AtomicUsize = AtomicUsize::new(0);

async fn web_search(query: &str) -> Result<Hit, String> {
    SEARCHES.fetch_add(1, Ordering::SeqCst);
    say(&format!("tool: searching \"{query}\" (a paid call)"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    Ok(Hit {
        query: query.to_owned(),
        snippet: format!("{} results", query.len() * 7),
    })
}

async fn model_summarise(hits: &[Hit]) -> Result<String, String> {
    say("model: writing the summary (slow)");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Ok(hits
        .iter()
        .map(|h| format!("{} ({})", h.query, h.snippet))
        .collect::<Vec<_>>()
        .join("; "))
}

// ===== the two processes =====

fn agent() -> TaskDef<Handler> {
    TaskDef::new("research", research as Handler)
        .queue("agents")
        .retry(RetryPolicy::exponential(Duration::from_millis(100)).max_retries(2))
}

async fn runner(db: &std::path::Path) -> Result<TaskRunner, Box<dyn std::error::Error>> {
    Ok(TaskRunner::builder()
        .queue("agents", QueueConfig::new().concurrency(2))
        .store(SqliteStore::open(db).await?)
        .register(&agent())
        .lease(Duration::from_millis(600)) // short, so the demo recovers quickly
        .poll_interval(Duration::from_millis(50))
        .build()?)
}

/// The first process: runs the agent until it is killed.
async fn worker(db: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let _runner = runner(db).await?;
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, db] = args.as_slice() {
        if flag == "--worker" {
            return worker(std::path::Path::new(db)).await;
        }
    }

    let dir = std::env::temp_dir().join(format!("taskrunner-durable-agent-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("runs.db");

    // Submit from a process that runs nothing: the run is committed to runs.db.
    let submitter = TaskRunner::builder()
        .store(SqliteStore::open(&db).await?)
        .build()?;
    let run = submitter
        .submit(&agent(), "durable execution in Rust".to_owned())
        .await?;
    let id: RunId = run.id();
    println!("submitted run {id}");

    println!("process 1 starts on it:");
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--worker")
        .arg(&db)
        .stdout(Stdio::inherit())
        .stderr(Stdio::null())
        .spawn()?;
    // Wait until the three searches are stored, then kill process 1 mid-summary.
    loop {
        let info = submitter.run_info(id).await?.ok_or("run vanished")?;
        if info.steps.iter().filter(|s| s.name == "search").count() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    child.kill()?; // SIGKILL: no cleanup, its lease just stops being renewed
    child.wait()?;
    let info = submitter.run_info(id).await?.ok_or("run vanished")?;
    println!(
        "process 1 killed; stored steps: {}",
        info.steps
            .iter()
            .map(|s| format!("{}#{}", s.name, s.index))
            .collect::<Vec<_>>()
            .join(", ")
    );

    println!("process 2 starts on the same file and recovers the run:");
    let restarted = runner(&db).await?;
    let report: Report = tokio::time::timeout(Duration::from_secs(30), run).await??;
    println!(
        "report on \"{}\" from {} sources:",
        report.question, report.sources
    );
    println!("  {}", report.summary);

    let info = restarted.run_info(id).await?.ok_or("run vanished")?;
    println!(
        "run {id}: {:?} after {} attempts; steps:",
        info.status, info.attempts
    );
    for step in &info.steps {
        println!("  {} #{}: {:?}", step.name, step.index, step.status);
    }
    println!(
        "search calls made by process 2: {} (the plan and the searches were read from the store)",
        SEARCHES.load(Ordering::SeqCst)
    );

    restarted.shutdown().await;
    submitter.shutdown().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
