//! A background job runner (the PraisonAI pattern, without its bugs): submit jobs, poll
//! their progress, cancel one by id, and wait with a timeout that does not cancel the job.
//! A failed job reports its error, not nothing.
//!
//! Run with `cargo run --example background_jobs`.

use std::time::Duration;

use taskrunner::{Task, TaskContext, TaskError, TaskRunner, TaskStatus};

/// A job that works through `steps` steps of `step_ms`, reporting progress; it fails at
/// step `fail_at`, if given.
fn job(
    name: &'static str,
    steps: u32,
    step_ms: u64,
    fail_at: Option<u32>,
) -> Task<
    impl Fn(TaskContext) -> futures::future::BoxFuture<'static, Result<String, String>> + Send + Sync,
> {
    Task::new(name, move |ctx: TaskContext| {
        Box::pin(async move {
            for step in 1..=steps {
                tokio::time::sleep(Duration::from_millis(step_ms)).await;
                if Some(step) == fail_at {
                    return Err(format!("disk full at step {step}"));
                }
                ctx.set_progress(
                    100.0 * step as f32 / steps as f32,
                    format!("step {step}/{steps}"),
                );
            }
            Ok(format!("{name}: {steps} steps done"))
        }) as futures::future::BoxFuture<'static, _>
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runner = TaskRunner::new();
    let report = runner.enqueue_task(job("report", 10, 100, None))?;
    let export = runner.enqueue_task(job("export", 10, 120, Some(6)))?;
    let reindex = runner.enqueue_task(job("reindex", 40, 100, None))?;
    println!(
        "submitted: report {}, export {}, reindex {}",
        report.id(),
        export.id(),
        reindex.id()
    );

    // Waiting with a timeout gives up waiting, not the job.
    let mut report = report;
    if tokio::time::timeout(Duration::from_millis(250), &mut report)
        .await
        .is_err()
    {
        println!(
            "waited 250 ms for report: not done yet, still {:?}",
            report.status()
        );
    }

    // Poll everyone's progress, as a UI would; cancel the reindex by id halfway.
    let reindex_id = reindex.id();
    for tick in 1..=5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let line: Vec<String> = runner
            .list_tasks()
            .iter()
            .map(|t| {
                let progress = t
                    .progress
                    .as_ref()
                    .map_or("-".to_owned(), |p| format!("{:.0}%", p.percent));
                format!("{} {:?} {}", t.name, t.status, progress)
            })
            .collect();
        println!("t={:>4} ms  {}", tick * 200, line.join(" | "));
        if tick == 3 {
            println!(
                "           cancel reindex by id {reindex_id}: {}",
                runner.cancel(reindex_id)
            );
        }
    }

    println!("report  -> {:?}", report.await);
    match export.await {
        Err(TaskError::Failed(error)) => println!("export  -> failed: {error}"),
        other => println!("export  -> {other:?}"),
    }
    println!("reindex -> {:?}", reindex.await);
    let info = runner.get_status(reindex_id).unwrap();
    assert_eq!(info.status, TaskStatus::Cancelled);
    println!(
        "reindex record: {:?} after {} attempt(s), last progress {:?}",
        info.status,
        info.attempts,
        info.progress.map(|p| p.message)
    );
    Ok(())
}
