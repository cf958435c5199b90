//! Watching a durable agent run from another process, with a disconnect in the middle.
//!
//! This process submits a research run to a SQLite file and starts a second process (this
//! binary again) that runs it: the agent emits its plan, each tool call and its result, and
//! its answer token by token. This process follows the run with `run_events(id)`, printing
//! each event; midway it drops the stream (a client that lost its connection), waits, and
//! resumes from the offset after the last event it printed: every event is printed once,
//! none is missed, and the stream ends after the run's terminal status.
//!
//! The model and the search tool are simulated (no network). Run with
//! `cargo run --example watch_run` (a few seconds).

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use taskrunner::store::SqliteStore;
use taskrunner::{RunEvent, RunEventKind, RunId, TaskContext, TaskDef, TaskRunner};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ToolCall {
    tool: String,
    query: String,
}

type Handler = fn(TaskContext, String) -> BoxFuture<'static, Result<String, String>>;

/// The agent: plan, search three times, then write the answer token by token.
fn research(ctx: TaskContext, question: String) -> BoxFuture<'static, Result<String, String>> {
    Box::pin(async move {
        let plan: Vec<String> = ctx
            .step("plan", || async {
                pause(200).await;
                Ok::<_, String>(vec![
                    format!("{question}: history"),
                    format!("{question}: today"),
                    format!("{question}: outlook"),
                ])
            })
            .await?;
        ctx.emit("plan", &plan).await?;
        let mut notes = Vec::new();
        for query in &plan {
            let call = ToolCall {
                tool: "web_search".into(),
                query: query.clone(),
            };
            ctx.emit("tool_call", &call).await?;
            let found: String = ctx
                .step("search", || async {
                    pause(250).await;
                    Ok::<_, String>(format!("3 pages on {query}"))
                })
                .await?;
            ctx.emit("tool_result", &found).await?;
            notes.push(found);
        }
        let answer = format!("Summary of {} sources about {question}.", notes.len());
        // Stored tokens: a client that reconnects gets the partial answer again. For tokens
        // nobody needs afterwards, `ctx.emit_live` stores nothing (and reaches readers in
        // other processes on PostgreSQL).
        for token in answer.split_inclusive(' ') {
            pause(40).await;
            ctx.emit("token", &token).await?;
        }
        Ok(answer)
    })
}

async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn def() -> TaskDef<Handler> {
    TaskDef::new("research", research as Handler)
}

fn show(event: &RunEvent) {
    let what = match &event.kind {
        RunEventKind::Emitted { topic, value, .. } => format!("{topic:<11} {value}"),
        other => format!("{other:?}"),
    };
    println!("  #{:<3} {what}", event.offset);
}

/// The second process: runs the agent until its run ends.
async fn worker(db: &str, id: RunId) -> Result<(), Box<dyn std::error::Error>> {
    let runner = TaskRunner::builder()
        .store(SqliteStore::open(db).await?)
        .register(&def())
        .poll_interval(Duration::from_millis(50))
        .build()?;
    runner.run_handle::<String>(id)?.await?;
    runner.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, db, id] = &args[..] {
        if mode == "worker" {
            return worker(db, id.parse()?).await;
        }
    }
    let dir = std::env::temp_dir().join(format!("taskrunner-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("runs.db");
    // This process runs nothing: it submits and watches.
    let runner = TaskRunner::builder()
        .store(SqliteStore::open(&db).await?)
        .build()?;
    let id = runner.submit(&def(), "solar power".to_owned()).await?.id();
    println!("run {id} submitted; a worker process runs it");
    let mut worker = Command::new(std::env::current_exe()?)
        .args(["worker", &db.display().to_string(), &id.to_string()])
        .stdout(Stdio::inherit())
        .spawn()?;

    let mut seen = HashSet::new();
    let mut next = 0;
    // Follow until the second tool call, then drop the stream: a lost connection.
    let mut events = runner.run_events(id);
    while let Some(event) = events.next().await {
        let event = event?;
        show(&event);
        assert!(seen.insert(event.offset), "offset {} twice", event.offset);
        next = event.next_offset();
        let second_call = matches!(&event.kind,
            RunEventKind::Emitted { topic, .. } if topic == "tool_call")
            && seen.len() > 4;
        if second_call {
            break;
        }
    }
    drop(events);
    println!(
        "-- disconnected after offset {}; the run goes on --",
        next - 1
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    println!("-- reconnected: resuming from offset {next} --");
    let mut events = runner.run_events(id).from(next);
    while let Some(event) = events.next().await {
        let event = event?;
        show(&event);
        assert!(seen.insert(event.offset), "offset {} twice", event.offset);
        next = event.next_offset();
    }
    println!("-- the stream ended after the terminal status: offsets 0..{next}, each once --");
    assert_eq!(seen.len() as u64, next, "an offset was missed");
    worker.wait()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
