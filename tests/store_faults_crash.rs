//! Recovery is not a retry (issue 19, point 5), with real child processes (this test binary,
//! re-invoked) killed with SIGKILL or dying by their own hand: a run whose process died is
//! claimed again without using a retry, and a run that kills its process every time stops
//! after its definition's `max_recoveries`. Both backends.
#![cfg(all(feature = "sqlite", feature = "postgres", unix))]

#[macro_use]
mod store_support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use store_support::faults::{self, append, entries, kill};
use store_support::{eventually, TestDb};
use taskrunner::{QueueConfig, RunFilter, RunStatus, TaskContext, TaskDef, TaskRunner};

const MODE_ENV: &str = "TASKRUNNER_FAULTS_CHILD_MODE";
const RUNS: u32 = 12;

/// No retry policy: logs `start <n>`, works 400 ms, logs `end <n>`. In mode `abort`, the
/// run kills its own process instead.
fn fragile() -> TaskDef<
    impl Fn(TaskContext, u32) -> futures::future::BoxFuture<'static, Result<u32, String>> + Clone,
> {
    let log = faults::child_log();
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

fn starts(log: &Path) -> HashMap<u32, usize> {
    let mut counts = HashMap::new();
    for (_, n) in entries(log).into_iter().filter(|(word, _)| word == "start") {
        *counts.entry(n).or_insert(0) += 1;
    }
    counts
}

/// The child: runs the definition until it is killed. A no-op unless re-invoked by a test.
#[test]
fn faults_child() {
    if faults::child_log().is_none() {
        return;
    }
    let def = fragile();
    faults::serve(
        4,
        Duration::from_millis(500),
        Duration::from_secs(120),
        |b| b.register(&def),
    );
}

fn spawn_child(db: &TestDb, log: &Path, mode: &str) -> Child {
    faults::spawn("faults_child", db, log, &[(MODE_ENV, mode)])
}

/// A worker killed mid-run, definition without any retry policy: its runs are recovered
/// (each `recoveries == 1`), not failed "worker lost".
async fn a_crash_without_retries_is_recovered(db: TestDb) {
    let log = faults::log_path("taskrunner_faults_log");
    let def = fragile();
    let submitter = faults::submitter(&db);
    let runs = submitter.submit_many(&def, 0..RUNS).await.unwrap();
    let mut child = spawn_child(&db, &log, "work");
    eventually(
        Duration::from_secs(30),
        "runs in flight in the child",
        || async { starts(&log).len() >= 2 },
    )
    .await;
    kill(&mut child); // SIGKILL
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
    assert_eq!(faults::outputs(runs).await, (0..RUNS).collect::<Vec<_>>());
    for n in &in_flight {
        let info = submitter.run_info(ids[*n as usize]).await.unwrap().unwrap();
        assert_eq!(
            (info.status, info.recoveries),
            (RunStatus::Completed, 1),
            "{info:?}"
        );
    }
    kill(&mut child);
    submitter.shutdown().await;
    let _ = std::fs::remove_file(log);
}

/// A run that kills its process every time is recovered `max_recoveries` (2) times, then
/// fails "worker lost 3 times" without running again.
async fn a_run_that_kills_its_process_stops_after_max_recoveries(db: TestDb) {
    let log = faults::log_path("taskrunner_faults_log");
    let def = fragile();
    let submitter = faults::submitter(&db);
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
    let log = faults::log_path("taskrunner_faults_log");
    let def = fragile();
    let submitter = faults::submitter(&db);
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
    assert_eq!(faults::outputs(runs).await, (0..RUNS).collect::<Vec<_>>());
    let mut recovered = 0;
    for id in &ids {
        let info = submitter.run_info(*id).await.unwrap().unwrap();
        assert_eq!(info.status, RunStatus::Completed, "{info:?}");
        recovered += u32::from(info.recoveries > 0);
    }
    assert!(recovered >= 1, "no run of the stopped worker was recovered");
    kill(&mut child);
    rescuer.shutdown().await;
    submitter.shutdown().await;
    let _ = std::fs::remove_file(log);
}

conformance!(
    a_crash_without_retries_is_recovered,
    a_run_that_kills_its_process_stops_after_max_recoveries,
    a_worker_stopped_past_its_lease_loses_nothing_but_time,
);
