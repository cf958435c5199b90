//! An agent fleet of two processes sharing one provider's tokens-per-minute limit.
//!
//! The same fleet as `token_budget.rs`, but durable and across processes: two worker
//! processes (this program, started again with `worker`) run the calls of one SQLite file,
//! whose `llm` queue has a [`QueueConfig::global_budget`] of 60,000 tokens a window. The
//! budget is held by the store, in the claim: a worker takes a call only when its estimate
//! (`RunOptions::cost`: the prompt plus `max_tokens`) fits what the window holds across both
//! processes; when the provider answers, the handler charges the tokens it really used
//! (`ctx.charge`), usually far fewer, and the next claims of both workers see the room it
//! freed.
//!
//! The program submits the calls, starts the two workers, waits for every call, and prints
//! the tokens charged in each window (by worker) and the largest sum over any sliding
//! window, read back from the store: never over the budget.
//!
//! To run in a few seconds the window is 2 s instead of a minute (`WINDOW`); the numbers
//! are the same.
//!
//! Run with `cargo run --release --example token_budget_fleet` (about 6 seconds).

use std::process::{Child, Command};
use std::time::{Duration, UNIX_EPOCH};

use taskrunner::store::{RunFilter, RunOptions, SqliteStore};
use taskrunner::{Budget, QueueConfig, TaskContext, TaskDef, TaskRunner};

/// The provider's limit: 60,000 tokens a "minute" (2 s here, to run quickly).
const TOKENS: u64 = 60_000;
const WINDOW: Duration = Duration::from_secs(2);
const CALLS: u32 = 40;

/// A call: its prompt's tokens and the most it may answer.
#[derive(serde::Serialize, serde::Deserialize)]
struct Call {
    prompt: u64,
    max_tokens: u64,
}

/// A call's answer: the worker that ran it and the tokens it used.
type Answer = futures::future::BoxFuture<'static, Result<(String, u64), String>>;

/// The model call, as every process declares it: the provider takes 50–250 ms and answers
/// with 10–100% of `max_tokens`; the handler charges what it used and says which worker
/// ran it.
fn chat() -> TaskDef<impl Fn(TaskContext, Call) -> Answer + Clone> {
    let worker = std::env::args().nth(3).unwrap_or_default();
    TaskDef::new("chat", move |ctx: TaskContext, call: Call| {
        let worker = worker.clone();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(50..250))).await;
            let used = call.prompt + fastrand::u64(call.max_tokens / 10..=call.max_tokens);
            ctx.charge(used);
            Ok((worker, used))
        }) as Answer
    })
    .queue("llm")
}

fn llm() -> QueueConfig {
    QueueConfig::new()
        .concurrency(8)
        .global_budget(Budget::new(TOKENS, WINDOW))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        return worker(&args[2]).await;
    }
    let dir = std::env::temp_dir().join(format!("token_budget_fleet_{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("fleet.db");
    let runner = TaskRunner::builder()
        .queue("llm", llm())
        .store(SqliteStore::open(&path).await?)
        .poll_interval(Duration::from_millis(50))
        .build()?;
    let calls = (0..CALLS).map(|_| {
        let call = Call {
            prompt: fastrand::u64(500..2_000),
            max_tokens: fastrand::u64(2_000..6_000),
        };
        let estimate = call.prompt + call.max_tokens;
        (call, RunOptions::new().cost(estimate))
    });
    let handles = runner.submit_many_with(&chat(), calls).await?;
    let mut workers: Vec<Child> = ["worker-1", "worker-2"]
        .iter()
        .map(|name| {
            Command::new(std::env::current_exe()?)
                .args(["worker", &path.display().to_string(), name])
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    println!(
        "{CALLS} calls submitted to {}; two workers started",
        path.display()
    );
    let mut total = 0;
    for handle in handles {
        total += tokio::time::timeout(Duration::from_secs(60), handle)
            .await??
            .1;
    }
    for worker in &mut workers {
        worker.kill()?;
        worker.wait()?;
    }

    // Each call's start (the store's clock) and charge, and the worker that ran it.
    let infos = runner.list_runs(RunFilter::new().name("chat")).await?;
    let mut calls: Vec<(u128, u64, String)> = Vec::new();
    let mut reserved = 0;
    for info in &infos {
        let started = info.started_at.ok_or("a call never started")?;
        let (worker, _): (String, u64) =
            serde_json::from_value(info.output.clone().ok_or("no output")?)?;
        calls.push((
            started.duration_since(UNIX_EPOCH)?.as_millis(),
            info.charged.ok_or("a call was not charged")?,
            worker,
        ));
        reserved += info.cost.unwrap_or(0);
    }
    calls.sort();
    let t0 = calls.first().map_or(0, |c| c.0);
    let last = calls.last().map_or(0, |c| c.0);
    println!(
        "{} calls used {total} tokens (they reserved {reserved}) in {:.1} s\n",
        calls.len(),
        (last - t0) as f64 / 1000.0
    );
    println!("| window | calls | tokens charged | worker-1 | worker-2 |");
    println!("|---|---:|---:|---:|---:|");
    let window = WINDOW.as_millis();
    for w in 0..=(last - t0) / window {
        let (from, to) = (t0 + w * window, t0 + (w + 1) * window);
        let inside: Vec<_> = calls.iter().filter(|c| c.0 >= from && c.0 < to).collect();
        let of =
            |worker: &str| -> u64 { inside.iter().filter(|c| c.2 == worker).map(|c| c.1).sum() };
        println!(
            "| {}–{} s | {} | {} | {} | {} |",
            w * WINDOW.as_secs() as u128,
            (w + 1) * WINDOW.as_secs() as u128,
            inside.len(),
            inside.iter().map(|c| c.1).sum::<u64>(),
            of("worker-1"),
            of("worker-2")
        );
    }
    let worst = calls
        .iter()
        .map(|start| {
            let inside = calls
                .iter()
                .filter(|c| c.0 >= start.0 && c.0 < start.0 + window);
            inside.map(|c| c.1).sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    println!("\nlargest sum over any sliding {WINDOW:?} window: {worst} of {TOKENS} tokens");
    runner.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    if worst > TOKENS {
        return Err(format!("over the budget: {worst} > {TOKENS}").into());
    }
    Ok(())
}

/// A worker process: runs the `chat` calls of the store at `path` under the global budget,
/// until the main process stops it (or a minute passes).
async fn worker(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let _runner = TaskRunner::builder()
        .queue("llm", llm())
        .store(SqliteStore::open(path).await?)
        .poll_interval(Duration::from_millis(50))
        .register(&chat())
        .build()?;
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(())
}
