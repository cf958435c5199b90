//! A real crash while runs wait: a child process (this test binary, re-invoked) runs agent
//! runs through their steps to a wait for approval, and is killed with SIGKILL while they wait
//! (holding nothing); this process then signals them, and a new worker resumes them: no step
//! runs again, the email is sent once, and no attempt was spent. Both backends.
#![cfg(all(feature = "sqlite", feature = "postgres", unix))]

mod store_support;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::future::BoxFuture;
use store_support::{eventually, open_locator, TestDb};
use taskrunner::{QueueConfig, RunStatus, TaskContext, TaskDef, TaskRunner};

const RUNS: u32 = 3;
const CHILD_ENV: &str = "TASKRUNNER_WAIT_CRASH_CHILD_STORE";
const LOG_ENV: &str = "TASKRUNNER_WAIT_CRASH_CHILD_LOG";

/// plan and search (steps), wait for `approve`, then send (a step): each step logs
/// `<step> <n>` when it runs. No retries: a crash must not need one.
fn agent(
    log: PathBuf,
) -> TaskDef<impl Fn(TaskContext, u32) -> BoxFuture<'static, Result<String, String>>> {
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

fn append(log: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
}

fn calls(log: &Path) -> HashMap<(String, u32), usize> {
    let mut counts = HashMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        if let Some((step, n)) = line.split_once(' ') {
            *counts
                .entry((step.to_owned(), n.parse().unwrap()))
                .or_insert(0) += 1;
        }
    }
    counts
}

fn worker(
    db: taskrunner::store::Store,
    def: &TaskDef<
        impl Fn(TaskContext, u32) -> BoxFuture<'static, Result<String, String>> + Send + Sync + 'static,
    >,
) -> TaskRunner {
    TaskRunner::builder()
        .queue("work", QueueConfig::new().concurrency(2))
        .store(db)
        .register(def)
        .lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap()
}

/// The child: runs the agent until it is killed. A no-op unless re-invoked by a test.
#[test]
fn wait_crash_child() {
    let (Ok(locator), Ok(log)) = (std::env::var(CHILD_ENV), std::env::var(LOG_ENV)) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let def = agent(PathBuf::from(log));
        let _runner = worker(open_locator(&locator).await, &def);
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

async fn killed_while_waiting_then_signalled_resumes_without_repeating(db: TestDb) {
    let log = std::env::temp_dir().join(store_support::unique("taskrunner_wait_crash_log"));
    let def = agent(log.clone());
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let runs = submitter.submit_many(&def, 0..RUNS).await.unwrap();
    let ids: Vec<_> = runs.iter().map(|r| r.id()).collect();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "wait_crash_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, db.locator())
        .env(LOG_ENV, &log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(30), "every run to wait", || async {
        let mut all = true;
        for id in &ids {
            all &= submitter.run_info(*id).await.unwrap().unwrap().status == RunStatus::Waiting;
        }
        all
    })
    .await;
    child.kill().unwrap(); // SIGKILL, while the runs wait
    child.wait().unwrap();

    // Another process (this one, running nothing) approves.
    for id in &ids {
        submitter.signal(*id, "approve", &true).await.unwrap();
    }
    let runner = worker(db.reopen().await, &def);
    for (n, run) in runs.into_iter().enumerate() {
        let out = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("a run never finished")
            .unwrap();
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
