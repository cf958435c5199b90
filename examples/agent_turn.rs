//! One agent turn as a unit: the model asks for six tool calls at once; they run in a task
//! group capped at two at a time (the tools queue itself allows four, shared with other
//! work); midway the user hits "stop", which cancels the group: the running tools are
//! stopped and none of the waiting ones starts, not even in a slot the cancel freed.
//!
//! Run with `cargo run --example agent_turn`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use taskrunner::{QueueConfig, Task, TaskContext, TaskError, TaskRunner};

/// A tool's own error type. `?` on an enqueue and on the result both go into
/// `TaskError<ToolError>`: one error type for the whole turn.
#[derive(Debug, thiserror::Error)]
#[error("tool error: {0}")]
struct ToolError(String);

/// A tool call as the model asked for it.
struct Call {
    id: &'static str,
    tool: &'static str,
    arg: &'static str,
    ms: u64,
}

fn tool(
    call: &Call,
    started: &Arc<AtomicUsize>,
    clock: Instant,
) -> Task<
    impl Fn(TaskContext) -> futures::future::BoxFuture<'static, Result<String, ToolError>>
        + Send
        + Sync
        + 'static,
> {
    let (tool, arg, ms) = (call.tool, call.arg.to_owned(), call.ms);
    let started = Arc::clone(started);
    Task::new(tool, move |ctx: TaskContext| {
        // The handler is `Fn` (called once per attempt): clone what the future takes.
        let arg = arg.clone();
        let started = Arc::clone(&started);
        Box::pin(async move {
            started.fetch_add(1, Ordering::SeqCst);
            println!(
                "{:>5} ms  start {tool}({arg}) [{}]",
                clock.elapsed().as_millis(),
                ctx.call_id()
            );
            tokio::time::sleep(Duration::from_millis(ms)).await;
            if arg.is_empty() {
                return Err(ToolError(format!("{tool}: empty argument")));
            }
            Ok(format!("{tool}({arg}): {} results", arg.len()))
        }) as futures::future::BoxFuture<'static, Result<String, ToolError>>
    })
    .queue("tools")
    .call_id(call.id)
}

/// Runs one turn: all calls in one group, their results as they come, until `stop` fires.
async fn turn(
    runner: &TaskRunner,
    calls: &[Call],
    stop: tokio::sync::oneshot::Receiver<()>,
    started: &Arc<AtomicUsize>,
    clock: Instant,
) -> Result<Vec<Result<String, TaskError<ToolError>>>, TaskError<ToolError>> {
    // Dropping the last clone of the group (say, the framework drops this turn's future)
    // cancels what is left of it, too.
    let group = runner.group().concurrency(2).cancel_on_drop();
    let mut handles = Vec::new();
    for call in calls {
        handles.push(group.enqueue_task(tool(call, started, clock))?); // EnqueueError -> TaskError
    }
    let canceller = group.clone();
    tokio::spawn(async move {
        if stop.await.is_ok() {
            let ended = canceller.cancel();
            println!(
                "{:>5} ms  user pressed stop: {ended} tool calls ended",
                clock.elapsed().as_millis()
            );
        }
    });
    Ok(futures::future::join_all(handles).await)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runner = TaskRunner::builder()
        .queue("tools", QueueConfig::new().concurrency(4))
        .build()?;
    let clock = Instant::now();
    let calls = [
        Call {
            id: "call_1",
            tool: "web_search",
            arg: "tokio groups",
            ms: 200,
        },
        Call {
            id: "call_2",
            tool: "read_file",
            arg: "Cargo.toml",
            ms: 100,
        },
        Call {
            id: "call_3",
            tool: "web_search",
            arg: "rig agents",
            ms: 300,
        },
        Call {
            id: "call_4",
            tool: "run_tests",
            arg: "--lib",
            ms: 400,
        },
        Call {
            id: "call_5",
            tool: "read_file",
            arg: "",
            ms: 100,
        },
        Call {
            id: "call_6",
            tool: "web_search",
            arg: "loom",
            ms: 200,
        },
    ];
    let started = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(350)).await;
        let _ = stop.send(());
    });
    let results = turn(&runner, &calls, stopped, &started, clock).await?;
    let at_stop = started.load(Ordering::SeqCst);
    for (call, result) in calls.iter().zip(&results) {
        match result {
            Ok(text) => println!("{}: {text}", call.id),
            Err(error) => println!("{}: {} ({error})", call.id, error.kind()),
        }
    }
    // After the stop, no tool starts: give the queue time to prove it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        at_stop,
        "a tool started after the stop"
    );
    println!(
        "{at_stop} of {} tool calls started; none after the stop",
        calls.len()
    );
    assert!(runner
        .find_call("call_4")
        .is_some_and(|info| info.status.is_terminal()));
    runner.shutdown().await;
    Ok(())
}
