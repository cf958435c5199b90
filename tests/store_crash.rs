//! A real crash: a child process (this test binary, re-invoked) claims durable runs and is
//! killed with SIGKILL mid-run; a new runner recovers them. Every run completes exactly
//! once in the store, and none that had completed before the kill runs again. Both backends.
#![cfg(all(feature = "sqlite", feature = "postgres", unix))]

mod store_support;

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use store_support::{eventually, open_locator, TestDb};
use taskrunner::{
    QueueConfig, RetryPolicy, RunFilter, RunStatus, TaskContext, TaskDef, TaskRunner,
};

const RUNS: u32 = 24;
const CHILD_ENV: &str = "TASKRUNNER_CRASH_CHILD_STORE";
const LOG_ENV: &str = "TASKRUNNER_CRASH_CHILD_LOG";

/// The definition both processes run: logs `start <n>` then, 300 ms later, `end <n>`.
fn crashy(
    log: PathBuf,
) -> TaskDef<
    impl Fn(TaskContext, u32) -> futures::future::BoxFuture<'static, Result<u32, String>> + Clone,
> {
    TaskDef::new("crashy", move |_: TaskContext, n: u32| {
        let log = log.clone();
        Box::pin(async move {
            append(&log, &format!("start {n}"));
            tokio::time::sleep(Duration::from_millis(300)).await;
            append(&log, &format!("end {n}"));
            Ok(n * 2)
        }) as futures::future::BoxFuture<'static, Result<u32, String>>
    })
    .queue("work")
    .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(3))
}

fn append(log: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    // One write of the whole line: lines of concurrent runs never interleave.
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
}

fn starts(log: &Path) -> HashMap<u32, usize> {
    let mut counts = HashMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        if let Some(n) = line.strip_prefix("start ") {
            *counts.entry(n.parse().unwrap()).or_insert(0) += 1;
        }
    }
    counts
}

/// The child: runs the definition until it is killed. A no-op unless re-invoked by a test.
#[test]
fn crash_child() {
    let (Ok(locator), Ok(log)) = (std::env::var(CHILD_ENV), std::env::var(LOG_ENV)) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let def = crashy(PathBuf::from(log));
        let _runner = TaskRunner::builder()
            .queue("work", QueueConfig::new().concurrency(4))
            .store(open_locator(&locator).await)
            .register(&def)
            .lease(Duration::from_secs(1))
            .poll_interval(Duration::from_millis(50))
            .build()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

async fn crash_and_recover(db: TestDb) {
    let log = std::env::temp_dir().join(store_support::unique("taskrunner_crash_log"));
    let def = crashy(log.clone());
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let runs = submitter.submit_many(&def, 0..RUNS).await.unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, db.locator())
        .env(LOG_ENV, &log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let completed = || async {
        submitter
            .list_runs(RunFilter::new().status(RunStatus::Completed).limit(1000))
            .await
            .unwrap()
    };
    eventually(
        Duration::from_secs(30),
        "the child to complete some runs",
        || async { completed().await.len() >= 6 },
    )
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done_before: HashSet<_> = completed().await.into_iter().map(|r| r.id).collect();
    let started_before = starts(&log);
    let in_flight = started_before.len() - done_before.len();
    assert!(
        done_before.len() < RUNS as usize,
        "the child finished everything before the kill"
    );

    // A new process on the same store recovers the rest once the child's leases expire.
    let runner = TaskRunner::builder()
        .queue("work", QueueConfig::new().concurrency(4))
        .store(db.reopen().await)
        .register(&def)
        .lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let ids: Vec<_> = runs.iter().map(|r| r.id()).collect();
    for (n, run) in runs.into_iter().enumerate() {
        let out = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("a run never finished")
            .unwrap();
        assert_eq!(out, n as u32 * 2);
    }
    let after = starts(&log);
    for (n, id) in ids.iter().enumerate() {
        let info = runner.run_info(*id).await.unwrap().unwrap();
        assert_eq!(info.status, RunStatus::Completed, "run {n}");
        if done_before.contains(id) {
            assert_eq!(
                after[&(n as u32)],
                1,
                "run {n} completed before the kill and ran again"
            );
            assert_eq!(info.attempts, 1);
        } else if started_before.contains_key(&(n as u32)) {
            // Killed mid-run: claimed again, the lost attempt counted.
            assert_eq!(info.attempts, 2, "run {n}");
        }
    }
    // Exactly one completed row per run: no duplicate executions stored.
    let completed_rows = completed().await;
    assert_eq!(completed_rows.len(), RUNS as usize);
    eprintln!(
        "crash test: {} completed before SIGKILL, {in_flight} in flight recovered, {} recovered in all",
        done_before.len(),
        RUNS as usize - done_before.len()
    );
    runner.shutdown().await;
    let _ = std::fs::remove_file(log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_runs_survive_a_sigkill() {
    crash_and_recover(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_runs_survive_a_sigkill() {
    let Some(db) = TestDb::pg().await else { return };
    crash_and_recover(db).await;
}
