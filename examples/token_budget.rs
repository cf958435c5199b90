//! An agent fleet sharing one provider's tokens-per-minute limit.
//!
//! Two agents (`planner` and `writer`) call one model through the `llm` queue, whose
//! [`Budget`] allows 60,000 tokens a window. Each call declares its worst case as its
//! estimate (`Task::cost`: the prompt plus `max_tokens`), which it reserves when it starts;
//! when the provider answers, the handler charges the tokens it really used
//! (`ctx.charge`), usually far fewer, and the room it frees lets the next calls start at
//! once. Each agent also has its own 40,000 a window (`key_budget`), so neither can take
//! the whole budget.
//!
//! The program prints the tokens charged in each window and the largest sum over any
//! sliding window: never over the budget.
//!
//! To run in a few seconds the window is 2 s instead of a minute (`WINDOW`); the numbers
//! are the same. This is the in-process version: the calls of both agents run in one
//! process, on one runner. `token_budget_fleet.rs` is the durable one: two worker
//! processes share the budget through one SQLite file (`QueueConfig::global_budget`).
//!
//! Run with `cargo run --release --example token_budget` (about 6 seconds).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use taskrunner::{Budget, QueueConfig, Task, TaskContext, TaskRunner};

/// The provider's limit: 60,000 tokens a "minute" (2 s here, to run quickly).
const TOKENS: u64 = 60_000;
const WINDOW: Duration = Duration::from_secs(2);
/// Each agent's own share.
const AGENT_TOKENS: u64 = 40_000;
const CALLS_PER_AGENT: usize = 30;

/// One call's charge: when it started, which agent, what it reserved, what it used.
type Ledger = Arc<Mutex<Vec<(Duration, &'static str, u64, u64)>>>;

/// A simulated model call: the prompt plus up to `max_tokens` of answer.
fn call(
    agent: &'static str,
    prompt: u64,
    max_tokens: u64,
    t0: Instant,
    ledger: &Ledger,
) -> Task<impl Fn(TaskContext) -> futures::future::BoxFuture<'static, Result<u64, String>>> {
    let ledger = Arc::clone(ledger);
    Task::new("chat", move |ctx: TaskContext| {
        let ledger = Arc::clone(&ledger);
        let started = t0.elapsed();
        Box::pin(async move {
            // The provider takes 50–250 ms and answers with 10–100% of max_tokens.
            tokio::time::sleep(Duration::from_millis(fastrand::u64(50..250))).await;
            let used = prompt + fastrand::u64(max_tokens / 10..=max_tokens);
            ctx.charge(used);
            ledger
                .lock()
                .unwrap()
                .push((started, agent, prompt + max_tokens, used));
            Ok(used)
        }) as futures::future::BoxFuture<'static, Result<u64, String>>
    })
    .queue("llm")
    .concurrency_key(agent)
    .cost(prompt + max_tokens)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runner = TaskRunner::builder()
        .queue(
            "llm",
            QueueConfig::new()
                .concurrency(16)
                .budget(Budget::new(TOKENS, WINDOW))
                .key_budget(Budget::new(AGENT_TOKENS, WINDOW)),
        )
        .build()?;
    let t0 = Instant::now();
    let ledger = Ledger::default();
    let mut handles = Vec::new();
    for agent in ["planner", "writer"] {
        for _ in 0..CALLS_PER_AGENT {
            let prompt = fastrand::u64(500..2_000);
            let max_tokens = fastrand::u64(2_000..6_000);
            handles.push(runner.enqueue_task(call(agent, prompt, max_tokens, t0, &ledger))?);
        }
    }
    let stats = runner.queue_stats("llm").unwrap();
    println!(
        "{} calls enqueued: {} running, {} waiting for the budget ({} tokens reserved)",
        handles.len(),
        stats.running,
        stats.waiting_for_budget,
        stats.budget_used.unwrap_or(0)
    );
    let mut total = 0;
    for handle in handles {
        total += handle.await?;
    }
    let elapsed = t0.elapsed();
    let calls = ledger.lock().unwrap().clone();
    let reserved: u64 = calls.iter().map(|c| c.2).sum();
    println!(
        "{} calls used {total} tokens (they reserved {reserved}) in {:.1} s\n",
        calls.len(),
        elapsed.as_secs_f64()
    );

    // The charges by window (fixed windows from the start), then the worst sliding window.
    println!("| window | calls | tokens charged | planner | writer |");
    println!("|---|---:|---:|---:|---:|");
    let windows = elapsed.as_nanos().div_ceil(WINDOW.as_nanos()) as u32;
    for w in 0..windows {
        let (from, to) = (WINDOW * w, WINDOW * (w + 1));
        let inside: Vec<_> = calls.iter().filter(|c| c.0 >= from && c.0 < to).collect();
        let of = |agent: &str| -> u64 { inside.iter().filter(|c| c.1 == agent).map(|c| c.3).sum() };
        let sum: u64 = inside.iter().map(|c| c.3).sum();
        println!(
            "| {:.0}–{:.0} s | {} | {sum} | {} | {} |",
            from.as_secs_f64(),
            to.as_secs_f64(),
            inside.len(),
            of("planner"),
            of("writer")
        );
    }
    let worst = calls
        .iter()
        .map(|start| {
            let window = |c: &&(Duration, &str, u64, u64)| c.0 >= start.0 && c.0 < start.0 + WINDOW;
            calls.iter().filter(window).map(|c| c.3).sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    println!("\nlargest sum over any sliding {WINDOW:?} window: {worst} of {TOKENS} tokens");
    if worst > TOKENS {
        return Err(format!("over the budget: {worst} > {TOKENS}").into());
    }
    Ok(())
}
