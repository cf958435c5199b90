//! A real crash in the middle of a durable run's steps: a child process (this test binary,
//! re-invoked) runs agent runs through steps 1 and 2 and is killed with SIGKILL inside
//! step 3; a new runner in this process recovers them, and they resume at step 3: steps 1
//! and 2 are not run again (every step call is counted in a side file). Both backends.
#![cfg(all(feature = "sqlite", feature = "postgres", unix))]

mod store_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use store_support::faults::{self, append, entries, kill};
use store_support::{eventually, TestDb};
use taskrunner::store::StepStatus;
use taskrunner::{QueueConfig, RetryPolicy, RunStatus, TaskContext, TaskDef, TaskRunner};

const RUNS: u32 = 3;

/// Three steps, each logging `<step> <n>` when it runs. In the child (`hang`), step 3 never
/// ends, so the kill lands in it.
fn agent(
    log: PathBuf,
    hang: bool,
) -> TaskDef<
    impl Fn(TaskContext, u32) -> futures::future::BoxFuture<'static, Result<String, String>> + Clone,
> {
    TaskDef::new("agent", move |ctx: TaskContext, n: u32| {
        let log = log.clone();
        Box::pin(async move {
            let a: String = ctx
                .step("fetch", || async {
                    append(&log, &format!("fetch {n}"));
                    Ok::<_, String>(format!("page {n}"))
                })
                .await?;
            let b: String = ctx
                .step("extract", || async {
                    append(&log, &format!("extract {n}"));
                    Ok::<_, String>(format!("facts of {a}"))
                })
                .await?;
            ctx.step("summarise", || async {
                append(&log, &format!("summarise {n}"));
                if hang {
                    tokio::time::sleep(Duration::from_secs(120)).await;
                }
                Ok::<_, String>(format!("summary of {b}"))
            })
            .await
        }) as futures::future::BoxFuture<'static, Result<String, String>>
    })
    .queue("work")
    .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(2))
}

/// How many times each `(step, run)` ran, from the side file.
fn calls(log: &Path) -> HashMap<(String, u32), usize> {
    let mut counts = HashMap::new();
    for entry in entries(log) {
        *counts.entry(entry).or_insert(0) += 1;
    }
    counts
}

/// The child: runs the agent until it is killed. A no-op unless re-invoked by a test.
#[test]
fn step_crash_child() {
    let Some(log) = faults::child_log() else {
        return;
    };
    let def = agent(log, true);
    faults::serve(4, Duration::from_secs(1), Duration::from_secs(120), |b| {
        b.register(&def)
    });
}

async fn killed_in_step_3_resumes_at_step_3(db: TestDb) {
    let log = faults::log_path("taskrunner_step_crash_log");
    let def = agent(log.clone(), false);
    let submitter = faults::submitter(&db);
    let runs = submitter.submit_many(&def, 0..RUNS).await.unwrap();

    let mut child = faults::spawn("step_crash_child", &db, &log, &[]);
    eventually(
        Duration::from_secs(30),
        "the child to reach step 3 of every run",
        || async {
            let calls = calls(&log);
            (0..RUNS).all(|n| calls.contains_key(&("summarise".to_owned(), n)))
        },
    )
    .await;
    kill(&mut child); // SIGKILL, inside step 3
    for run in &runs {
        let info = submitter.run_info(run.id()).await.unwrap().unwrap();
        assert_eq!(info.status, RunStatus::Running, "killed mid-run");
        let done: Vec<_> = info.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            done,
            ["fetch", "extract"],
            "steps 1 and 2 stored before the kill"
        );
    }

    // A new process on the same store recovers the runs once the child's leases expire.
    let runner = TaskRunner::builder()
        .queue("work", QueueConfig::new().concurrency(4))
        .store(db.reopen().await)
        .register(&def)
        .lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let ids: Vec<_> = runs.iter().map(|r| r.id()).collect();
    for (n, out) in faults::outputs(runs).await.into_iter().enumerate() {
        assert_eq!(out, format!("summary of facts of page {n}"));
    }
    let calls = calls(&log);
    for n in 0..RUNS {
        let count = |step: &str| calls.get(&(step.to_owned(), n)).copied().unwrap_or(0);
        assert_eq!(count("fetch"), 1, "run {n}: step 1 ran again");
        assert_eq!(count("extract"), 1, "run {n}: step 2 ran again");
        assert_eq!(
            count("summarise"),
            2,
            "run {n}: step 3 ran in both processes"
        );
    }
    for id in ids {
        let info = runner.run_info(id).await.unwrap().unwrap();
        assert_eq!((info.status, info.attempts), (RunStatus::Completed, 2));
        let steps: Vec<_> = info
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.status))
            .collect();
        assert_eq!(
            steps,
            [
                ("fetch", StepStatus::Completed),
                ("extract", StepStatus::Completed),
                ("summarise", StepStatus::Completed),
            ]
        );
    }
    runner.shutdown().await;
    let _ = std::fs::remove_file(log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_steps_resume_after_a_sigkill() {
    killed_in_step_3_resumes_at_step_3(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_steps_resume_after_a_sigkill() {
    let Some(db) = TestDb::pg().await else { return };
    killed_in_step_3_resumes_at_step_3(db).await;
}
