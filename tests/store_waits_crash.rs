//! A real crash while runs wait: a child process (this test binary, re-invoked) runs agent
//! runs through their steps to a wait for approval, and is killed with SIGKILL while they wait
//! (holding nothing); this process then signals them, and a new worker resumes them: no step
//! runs again, the email is sent once, and no attempt was spent. Both backends.
#![cfg(all(feature = "sqlite", feature = "postgres", unix))]

mod store_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;
use store_support::faults::{self, append, entries, kill};
use store_support::{eventually, TestDb};
use taskrunner::{QueueConfig, RunStatus, TaskContext, TaskDef, TaskRunner};

const RUNS: u32 = 3;

/// plan and search (steps), wait for `approve`, then send (a step): each step logs
/// `<step> <n>` when it runs. No retries: a crash must not need one.
fn agent(
    log: PathBuf,
) -> TaskDef<impl Fn(TaskContext, u32) -> BoxFuture<'static, Result<String, String>> + Clone> {
    TaskDef::new("agent", move |ctx: TaskContext, n: u32| {
        let log = log.clone();
        Box::pin(async move {
            let plan: String = ctx
                .step("plan", || async {
                    append(&log, &format!("plan {n}"));
                    Ok::<_, String>(format!("plan {n}"))
                })
                .await?;
            let found: String = ctx
                .step("search", || async {
                    append(&log, &format!("search {n}"));
                    Ok::<_, String>(format!("{plan}: found"))
                })
                .await?;
            let ok: Option<bool> = ctx
                .wait_for_signal("approve", Duration::from_secs(3600))
                .await?;
            if ok != Some(true) {
                return Ok("not approved".to_owned());
            }
            ctx.step("send", || async {
                append(&log, &format!("send {n}"));
                Ok::<_, String>(format!("sent {found}"))
            })
            .await
        }) as BoxFuture<'static, Result<String, String>>
    })
    .queue("work")
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
fn wait_crash_child() {
    let Some(log) = faults::child_log() else {
        return;
    };
    let def = agent(log);
    faults::serve(2, Duration::from_secs(1), Duration::from_secs(120), |b| {
        b.register(&def)
    });
}

async fn killed_while_waiting_then_signalled_resumes_without_repeating(db: TestDb) {
    let log = faults::log_path("taskrunner_wait_crash_log");
    let def = agent(log.clone());
    let submitter = faults::submitter(&db);
    let runs = submitter.submit_many(&def, 0..RUNS).await.unwrap();
    let ids: Vec<_> = runs.iter().map(|r| r.id()).collect();

    let mut child = faults::spawn("wait_crash_child", &db, &log, &[]);
    eventually(Duration::from_secs(30), "every run to wait", || async {
        let mut all = true;
        for id in &ids {
            all &= submitter.run_info(*id).await.unwrap().unwrap().status == RunStatus::Waiting;
        }
        all
    })
    .await;
    kill(&mut child); // SIGKILL, while the runs wait

    // Another process (this one, running nothing) approves.
    for id in &ids {
        submitter.signal(*id, "approve", &true).await.unwrap();
    }
    let runner = TaskRunner::builder()
        .queue("work", QueueConfig::new().concurrency(2))
        .store(db.reopen().await)
        .register(&def)
        .lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    for (n, out) in faults::outputs(runs).await.into_iter().enumerate() {
        assert_eq!(out, format!("sent plan {n}: found"));
    }
    let calls = calls(&log);
    for n in 0..RUNS {
        for step in ["plan", "search", "send"] {
            let count = calls.get(&(step.to_owned(), n)).copied().unwrap_or(0);
            assert_eq!(count, 1, "run {n}: step {step} ran {count} times");
        }
    }
    for id in ids {
        let info = runner.run_info(id).await.unwrap().unwrap();
        assert_eq!((info.status, info.attempts), (RunStatus::Completed, 1));
    }
    runner.shutdown().await;
    let _ = std::fs::remove_file(log);
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_while_waiting_then_signalled_resumes_without_repeating() {
        super::killed_while_waiting_then_signalled_resumes_without_repeating(
            super::TestDb::sqlite().await,
        )
        .await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_while_waiting_then_signalled_resumes_without_repeating() {
        let Some(db) = super::TestDb::pg().await else {
            return;
        };
        super::killed_while_waiting_then_signalled_resumes_without_repeating(db).await;
    }
}
