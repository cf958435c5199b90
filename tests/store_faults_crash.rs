//! Recovery is not a retry (issue 19, point 5), with real child processes (this test binary,
//! re-invoked) killed with SIGKILL or dying by their own hand: a run whose process died is
//! claimed again without using a retry, and a run that kills its process every time stops
//! after its definition's `max_recoveries`. Both backends.
#![cfg(all(feature = "sqlite", feature = "postgres", unix))]

mod store_support;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use store_support::{eventually, open_locator, TestDb};
use taskrunner::{QueueConfig, RunFilter, RunStatus, TaskContext, TaskDef, TaskRunner};

const CHILD_ENV: &str = "TASKRUNNER_FAULTS_CHILD_STORE";
const LOG_ENV: &str = "TASKRUNNER_FAULTS_CHILD_LOG";
const MODE_ENV: &str = "TASKRUNNER_FAULTS_CHILD_MODE";
const RUNS: u32 = 12;

/// No retry policy: logs `start <n>`, works 400 ms, logs `end <n>`. In mode `abort`, the
/// run kills its own process instead.
fn fragile() -> TaskDef<
    impl Fn(TaskContext, u32) -> futures::future::BoxFuture<'static, Result<u32, String>> + Clone,
> {
    let log = std::env::var(LOG_ENV).map(PathBuf::from).ok();
    let abort = std::env::var(MODE_ENV).is_ok_and(|m| m == "abort");
    TaskDef::new("fragile", move |_: TaskContext, n: u32| {
        let log = log.clone();
        Box::pin(async move {
            if let Some(log) = &log {
                append(log, &format!("start {n}"));
            }
            if abort {
                std::process::abort();
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
            if let Some(log) = &log {
                append(log, &format!("end {n}"));
            }
            Ok(n)
        }) as futures::future::BoxFuture<'static, Result<u32, String>>
    })
    .queue("work")
    .max_recoveries(2)
}

fn append(log: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
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
fn faults_child() {
    let Ok(locator) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let def = fragile();
        let _runner = TaskRunner::builder()
            .queue("work", QueueConfig::new().concurrency(4))
            .store(open_locator(&locator).await)
            .register(&def)
            .lease(Duration::from_millis(500))
            .poll_interval(Duration::from_millis(50))
            .build()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

fn spawn_child(db: &TestDb, log: &Path, mode: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["faults_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, db.locator())
        .env(LOG_ENV, log)
        .env(MODE_ENV, mode)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A worker killed mid-run, definition without any retry policy: its runs are recovered
/// (each `recoveries == 1`), not failed "worker lost".
async fn a_crash_without_retries_is_recovered(db: TestDb) {
    let log = std::env::temp_dir().join(store_support::unique("taskrunner_faults_log"));
    let def = fragile();
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let runs = submitter.submit_many(&def, 0..RUNS).await.unwrap();
    let mut child = spawn_child(&db, &log, "work");
    eventually(
        Duration::from_secs(30),
        "runs in flight in the child",
        || async { starts(&log).len() >= 2 },
    )
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let in_flight: Vec<u32> = {
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        starts(&log)
            .into_keys()
            .filter(|n| !log_text.contains(&format!("end {n}\n")))
            .collect()
    };
    assert!(!in_flight.is_empty(), "nothing was in flight at the kill");
    let mut child = spawn_child(&db, &log, "work");
    let ids: Vec<_> = runs.iter().map(|r| r.id()).collect();
    for (n, run) in runs.into_iter().enumerate() {
        let out = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("a run never finished");
        assert_eq!(out.unwrap(), n as u32, "run {n}");
    }
    for n in &in_flight {
        let info = submitter.run_info(ids[*n as usize]).await.unwrap().unwrap();
        assert_eq!(
            (info.status, info.recoveries),
            (RunStatus::Completed, 1),
            "{info:?}"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    submitter.shutdown().await;
    let _ = std::fs::remove_file(log);
}

/// A run that kills its process every time is recovered `max_recoveries` (2) times, then
/// fails "worker lost 3 times" without running again.
async fn a_run_that_kills_its_process_stops_after_max_recoveries(db: TestDb) {
    let log = std::env::temp_dir().join(store_support::unique("taskrunner_faults_log"));
    let def = fragile();
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let run = submitter.submit(&def, 7).await.unwrap();
    let id = run.id();
    let ended = || async {
        let runs = submitter
            .list_runs(RunFilter::new().name("fragile"))
            .await
            .unwrap();
        runs.iter()
            .all(|r| matches!(r.status, RunStatus::Failed | RunStatus::Completed))
    };
    for _ in 0..8 {
        let mut child = spawn_child(&db, &log, "abort");
        // The child dies by its own hand once it runs the run; if it never does (the run
        // ended), stop it.
        let deadline = std::time::Instant::now() + Duration::from_secs(6);
        while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        child.wait().unwrap();
        if ended().await {
            break;
        }
    }
    let info = submitter.run_info(id).await.unwrap().unwrap();
    assert_eq!(info.status, RunStatus::Failed, "{info:?}");
    let error = info.error.clone().unwrap_or_default();
    assert!(error.starts_with("worker lost 3 times"), "{error}");
    assert_eq!(info.recoveries, 3, "{info:?}");
    assert_eq!(starts(&log).get(&7), Some(&3), "ran past max_recoveries");
    submitter.shutdown().await;
    let _ = std::fs::remove_file(log);
}

/// A worker stopped (SIGSTOP) past its lease, then resumed: another process recovers its
/// runs and completes them; the resumed one's late writes are fenced. It lost nothing but
/// time: no run failed, each completed once.
async fn a_worker_stopped_past_its_lease_loses_nothing_but_time(db: TestDb) {
    let log = std::env::temp_dir().join(store_support::unique("taskrunner_faults_log"));
    let def = fragile();
    let submitter = TaskRunner::builder()
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let runs = submitter.submit_many(&def, 0..RUNS).await.unwrap();
    let ids: Vec<_> = runs.iter().map(|r| r.id()).collect();
    let mut child = spawn_child(&db, &log, "work");
    eventually(
        Duration::from_secs(30),
        "runs in flight in the child",
        || async { starts(&log).len() >= 2 },
    )
    .await;
    let signal = |sig: &str| {
        let status = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    // This process takes over once the stopped one's leases lapse.
    let rescuer = TaskRunner::builder()
        .queue("work", QueueConfig::new().concurrency(4))
        .store(db.reopen().await)
        .register(&def)
        .lease(Duration::from_millis(500))
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    signal("-CONT");
    for (n, run) in runs.into_iter().enumerate() {
        let out = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("a run never finished");
        assert_eq!(out.unwrap(), n as u32, "run {n}");
    }
    let mut recovered = 0;
    for id in &ids {
        let info = submitter.run_info(*id).await.unwrap().unwrap();
        assert_eq!(info.status, RunStatus::Completed, "{info:?}");
        recovered += u32::from(info.recoveries > 0);
    }
    assert!(recovered >= 1, "no run of the stopped worker was recovered");
    child.kill().unwrap();
    child.wait().unwrap();
    rescuer.shutdown().await;
    submitter.shutdown().await;
    let _ = std::fs::remove_file(log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_worker_stopped_past_its_lease_loses_nothing_but_time() {
    a_worker_stopped_past_its_lease_loses_nothing_but_time(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_worker_stopped_past_its_lease_loses_nothing_but_time() {
    let Some(db) = TestDb::pg().await else { return };
    a_worker_stopped_past_its_lease_loses_nothing_but_time(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_crash_without_retries_is_recovered() {
    a_crash_without_retries_is_recovered(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_crash_without_retries_is_recovered() {
    let Some(db) = TestDb::pg().await else { return };
    a_crash_without_retries_is_recovered(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_run_that_kills_its_process_stops_after_max_recoveries() {
    a_run_that_kills_its_process_stops_after_max_recoveries(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_run_that_kills_its_process_stops_after_max_recoveries() {
    let Some(db) = TestDb::pg().await else { return };
    a_run_that_kills_its_process_stops_after_max_recoveries(db).await;
}
