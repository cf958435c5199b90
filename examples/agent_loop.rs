//! An agent loop with background shell commands (the learn-claude-code pattern, without its
//! bugs): slow commands run in the background; before each model call the loop drains the
//! notifications of what finished, failures included, and a command that hangs is killed
//! with everything it started.
//!
//! Run with `cargo run --example agent_loop`.

use std::time::{Duration, Instant};

use taskrunner::{QueueConfig, ShellTask, TaskRunner, TaskStatus};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runner = TaskRunner::builder()
        .queue("shell", QueueConfig::new().concurrency(4))
        .summary_len(160)
        .build()?;
    let start = Instant::now();
    let at = || format!("{:>5} ms", start.elapsed().as_millis());

    // The "model" asks for three background commands at turn 1.
    let commands = [
        (
            "call_1",
            "compile",
            "sleep 0.3; echo 'Finished release [optimized] in 0.3s'",
        ),
        (
            "call_2",
            "tests",
            "sleep 0.6; echo 'test result: FAILED. 41 passed; 1 failed' >&2; exit 101",
        ),
        ("call_3", "watch_logs", "tail -f /dev/null & sleep 600"),
    ];
    let mut watcher = None;
    for (call_id, name, command) in commands {
        let handle = runner.enqueue_task(
            ShellTask::new(command)
                .name(name)
                .timeout(Duration::from_secs(2))
                .into_task()
                .queue("shell")
                .call_id(call_id)
                .notify_with(|out| format!("exit {}: {}", out.code, out.stdout.trim())),
        )?;
        println!(
            "{} turn 1: started `{name}` in the background ({call_id})",
            at()
        );
        if name == "watch_logs" {
            watcher = Some(handle);
        }
    }

    // Each later turn: drain what finished, then "call the model" with it.
    for turn in 2..=5 {
        runner.notified().await;
        let finished = runner.drain_notifications();
        for note in &finished {
            let verdict = match note.status {
                TaskStatus::Completed => "ok",
                TaskStatus::Failed => "FAILED",
                _ => "cancelled",
            };
            println!(
                "{} turn {turn}: <background {} {}: {verdict}> {}",
                at(),
                note.call_id,
                note.name,
                note.summary
            );
            if note.truncated {
                let full = runner.full_result(note.id).unwrap_or_default();
                println!(
                    "{}          (summary cut; the model can fetch all {} characters by id)",
                    at(),
                    full.len()
                );
            }
        }
        if finished.iter().any(|n| n.name == "tests") {
            // The model reads the failure and decides the log watcher is no longer needed.
            if let Some(watcher) = watcher.take() {
                println!(
                    "{} turn {turn}: model: \"tests failed; stop watching logs\" → cancel",
                    at()
                );
                watcher.cancel();
            }
        }
        if runner.queue_stats("shell").map(|s| s.running + s.pending) == Some(0)
            && runner.drain_notifications().is_empty()
            && watcher.is_none()
            && turn > 2
        {
            break;
        }
    }
    runner.shutdown().await;
    println!(
        "{} done: every background command ended, the hung one with all its children killed.",
        at()
    );
    Ok(())
}
