//! A simulated agent turn: the model plans, its tool calls run under per-queue limits, and
//! the timeline shows what ran when, and why.
//!
//! - `llm` queue, concurrency 1: model calls are rate-limited to one at a time.
//! - `tools` queue, concurrency 3: tool calls, urgent ones first.
//! - `web_search` is flaky (HTTP 503 twice) and is retried with exponential backoff; its
//!   backoff holds no slot, so other tools run meanwhile.
//! - `crawl_site` is slow; the user gives up on it and it is cancelled.
//! - `parse_pdf` panics; only that call fails.
//! - `index_docs` is background work (priority -10); `notify_user` (priority 100) jumps
//!   ahead of it.
//!
//! Run with `cargo run --release --example agent_actions`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use taskrunner::{QueueConfig, RetryPolicy, Task, TaskContext, TaskError, TaskRunner, TaskStatus};
use tokio::time::sleep;

/// Prints one timeline line: time since start, queue, call, what happened.
fn log(ctx: &TaskContext, what: impl std::fmt::Display) {
    static START: OnceLock<Instant> = OnceLock::new();
    let ms = START.get_or_init(Instant::now).elapsed().as_millis();
    println!(
        "{ms:>6} ms  {:<6} {:<12} {:<8} {what}",
        ctx.queue(),
        ctx.name(),
        ctx.call_id()
    );
}

/// A tool call that works for `ms` milliseconds and answers `answer`.
fn tool(
    name: &'static str,
    ms: u64,
    answer: &'static str,
) -> Task<
    impl Fn(TaskContext) -> futures::future::BoxFuture<'static, Result<String, String>> + Send + Sync,
> {
    Task::new(name, move |ctx: TaskContext| {
        Box::pin(async move {
            log(&ctx, format!("start (attempt {})", ctx.attempt()));
            sleep(Duration::from_millis(ms)).await;
            log(&ctx, format!("done: {answer}"));
            Ok(answer.to_owned())
        }) as futures::future::BoxFuture<'static, Result<String, String>>
    })
    .queue("tools")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The runner contains a handler's panic (the task fails with `TaskError::Panicked`), but
    // Rust's default hook still prints it, backtrace and all. One line is enough here.
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("?");
        println!("                 (a tool panicked: \"{message}\"; only its task fails)");
    }));
    let runner = TaskRunner::builder()
        .queue("llm", QueueConfig::new().concurrency(1))
        .queue("tools", QueueConfig::new().concurrency(3))
        .build()?;

    println!("    time  queue  call         call id  event");
    println!("  ------  -----  ----         -------  -----");

    // 1. The model plans the turn. One model call at a time.
    let plan = runner.enqueue_task(
        Task::new("plan", |ctx: TaskContext| async move {
            log(&ctx, "thinking…");
            sleep(Duration::from_millis(200)).await;
            log(
                &ctx,
                "wants: web_search, crawl_site, parse_pdf, read_file ×2, index_docs",
            );
            Ok::<_, String>(())
        })
        .queue("llm")
        .call_id("call_0"),
    )?;
    plan.await?;

    // 2. The tool calls it asked for.
    let search = runner.enqueue_task(
        Task::new("web_search", |ctx: TaskContext| async move {
            log(&ctx, format!("start (attempt {})", ctx.attempt()));
            sleep(Duration::from_millis(80)).await;
            if ctx.attempt() < 3 {
                log(&ctx, "HTTP 503, will retry");
                return Err("HTTP 503 Service Unavailable".to_owned());
            }
            log(&ctx, "done: 3 results");
            Ok("3 results".to_owned())
        })
        .queue("tools")
        .priority(10)
        .call_id("call_1")
        .retry(RetryPolicy::exponential(Duration::from_millis(150)).max_retries(4)),
    )?;
    let crawl = runner.enqueue_task(
        tool("crawl_site", 60_000, "never")
            .priority(5)
            .call_id("call_2"),
    )?;
    let pdf = runner.enqueue_task(
        Task::new("parse_pdf", |ctx: TaskContext| async move {
            log(&ctx, "start");
            sleep(Duration::from_millis(50)).await;
            let pages: Vec<u32> = Vec::new();
            log(&ctx, "reading page 1…");
            Ok::<_, String>(pages[0]) // index out of bounds: a bug in the tool
        })
        .queue("tools")
        .priority(5)
        .call_id("call_3"),
    )?;
    let files: Vec<_> = ["call_4", "call_5"]
        .into_iter()
        .map(|id| runner.enqueue_task(tool("read_file", 150, "42 lines").call_id(id)))
        .collect::<Result<_, _>>()?;
    let index = runner.enqueue_task(
        tool("index_docs", 100, "indexed")
            .priority(-10)
            .call_id("call_6"),
    )?;
    let stats = runner.queue_stats("tools").unwrap();
    println!(
        "                 (tools queue: {} running, {} waiting)",
        stats.running, stats.pending
    );

    // 3. The user wants a progress note sent now, and gives up on the crawl. The note
    //    waits (the queue is full), then takes the crawl's slot ahead of the older
    //    background task.
    sleep(Duration::from_millis(100)).await;
    let notify = runner.enqueue_task(
        tool("notify_user", 50, "sent")
            .priority(100)
            .call_id("call_7"),
    )?;
    let stats = runner.queue_stats("tools").unwrap();
    println!(
        "                 (user: \"tell me where we are\" → call_7, priority 100, waits: {} running, {} waiting)",
        stats.running, stats.pending
    );
    println!(
        "                 (user: \"skip the crawl\" → cancel call_2; its slot goes to call_7)"
    );
    crawl.cancel();

    // 4. Gather what came back.
    let mut results = Vec::new();
    results.push(("web_search", search.await.map_err(|e| e.to_string())));
    results.push((
        "crawl_site",
        match crawl.await {
            Err(TaskError::Cancelled) => Err("cancelled by the user".to_owned()),
            other => other.map_err(|e| e.to_string()),
        },
    ));
    results.push((
        "parse_pdf",
        pdf.await.map(|p| p.to_string()).map_err(|e| e.to_string()),
    ));
    for file in files {
        results.push(("read_file", file.await.map_err(|e| e.to_string())));
    }
    results.push(("index_docs", index.await.map_err(|e| e.to_string())));
    results.push(("notify_user", notify.await.map_err(|e| e.to_string())));

    // 5. The model answers from the results.
    let summary: Vec<String> = results
        .iter()
        .map(|(name, result)| match result {
            Ok(value) => format!("{name}: {value}"),
            Err(error) => format!("{name}: {error}"),
        })
        .collect();
    let answer = runner.enqueue_task(
        Task::new("answer", move |ctx: TaskContext| {
            let summary = summary.clone();
            async move {
                log(&ctx, format!("reading {} tool results", summary.len()));
                sleep(Duration::from_millis(100)).await;
                log(&ctx, "done");
                Ok::<_, String>(summary)
            }
        })
        .queue("llm")
        .call_id("call_8"),
    )?;
    let summary = answer.await?;
    runner.shutdown().await;

    println!("\nWhat the model saw:");
    for line in summary {
        println!("  {line}");
    }
    println!("\nEvery task, from runner.list_tasks():");
    println!(
        "  {:<12} {:<6} {:>4}  {:<9} {:>8}  error",
        "call", "queue", "prio", "status", "attempts"
    );
    for info in runner.list_tasks() {
        println!(
            "  {:<12} {:<6} {:>4}  {:<9} {:>8}  {}",
            info.name,
            info.queue,
            info.priority,
            format!("{:?}", info.status),
            info.attempts,
            info.error.as_deref().unwrap_or("")
        );
    }
    let failed = runner
        .list_tasks()
        .iter()
        .filter(|t| t.status != TaskStatus::Completed)
        .count();
    println!(
        "\n{failed} of {} calls did not complete; the runner kept going.",
        runner.list_tasks().len()
    );
    Ok(())
}
