//! Global limits on a store (issue 22, point 2): `QueueConfig::global_rate_limit` holds
//! across processes. Two real child processes (this test binary, re-invoked) claim from one
//! store with a global rate of 50 a second; the runs' stored start times never put more than
//! 50 in any 1-s window, and every run completes. Both backends. Bad input is refused.
#![cfg(all(feature = "sqlite", feature = "postgres", unix))]

#[macro_use]
mod store_support;

use std::process::Child;
use std::time::{Duration, UNIX_EPOCH};

use store_support::faults::{self, append, entries, kill};
use store_support::{open_locator, TestDb};
use taskrunner::{
    ConfigError, QueueConfig, RateLimit, RunFilter, RunStatus, TaskContext, TaskDef, TaskRunner,
};

const MODE_ENV: &str = "TASKRUNNER_LIMITS_CHILD_MODE";
const STORE_ENV: &str = "TASKRUNNER_TEST_CHILD_STORE";
const RATE: u32 = 50;
const RUNS: u32 = 200;

fn limited_queue() -> QueueConfig {
    QueueConfig::new()
        .concurrency(16)
        .global_rate_limit(RateLimit::new(RATE, Duration::from_secs(1)))
}

/// Works 5 ms; in a child, logs `<process> <n>` (process 1 or 2) first.
fn limited() -> TaskDef<
    impl Fn(TaskContext, u32) -> futures::future::BoxFuture<'static, Result<u32, String>> + Clone,
> {
    let log = faults::child_log();
    let process: u32 = std::env::var(MODE_ENV)
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    TaskDef::new("limited", move |_: TaskContext, n: u32| {
        let log = log.clone();
        Box::pin(async move {
            if let Some(log) = &log {
                append(log, &format!("p{process} {n}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(n)
        }) as futures::future::BoxFuture<'static, Result<u32, String>>
    })
    .queue("work")
}

/// The child: claims and runs `limited` under the global rate until killed (or 60 s).
#[test]
fn limits_child() {
    if faults::child_log().is_none() {
        return;
    }
    let locator = std::env::var(STORE_ENV).expect("a child has a store");
    let def = limited();
    faults::runtime().block_on(async move {
        let _runner = TaskRunner::builder()
            .queue("work", limited_queue())
            .store(open_locator(&locator).await)
            .poll_interval(Duration::from_millis(50))
            .register(&def)
            .build()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

fn spawn_child(db: &TestDb, log: &std::path::Path, process: &str) -> Child {
    faults::spawn("limits_child", db, log, &[(MODE_ENV, process)])
}

/// 200 runs, two processes claiming at a global 50 a second: every run completes, no 1-s
/// window of stored start times holds more than 50, the limit binds (some window is nearly
/// full) and both processes ran runs.
async fn a_global_rate_limit_holds_across_two_processes(db: TestDb) {
    let log = faults::log_path("taskrunner_limits_log");
    let def = limited();
    let submitter = faults::submitter(&db);
    let runs = submitter.submit_many(&def, 0..RUNS).await.unwrap();
    let mut one = spawn_child(&db, &log, "1");
    let mut two = spawn_child(&db, &log, "2");
    let outputs = faults::outputs(runs).await;
    kill(&mut one);
    kill(&mut two);
    assert_eq!(outputs, (0..RUNS).collect::<Vec<_>>());
    let infos = submitter
        .list_runs(RunFilter::new().name("limited").limit(RUNS + 10))
        .await
        .unwrap();
    assert_eq!(infos.len(), RUNS as usize);
    let mut starts: Vec<u128> = infos
        .iter()
        .map(|info| {
            assert_eq!(info.status, RunStatus::Completed, "{info:?}");
            let started = info.started_at.expect("a completed run has a start time");
            started.duration_since(UNIX_EPOCH).unwrap().as_millis()
        })
        .collect();
    starts.sort_unstable();
    // The most starts in any window [t, t + 1 s) (t a start time: the fullest window
    // begins at one).
    let fullest = (0..starts.len())
        .map(|i| starts[i..].partition_point(|&s| s < starts[i] + 1000))
        .max()
        .unwrap();
    assert!(
        fullest <= RATE as usize,
        "{fullest} runs started within one second (limit {RATE})"
    );
    assert!(
        fullest >= (RATE as usize) * 4 / 5,
        "the limit never bound: at most {fullest} starts in a second"
    );
    let spread = starts[starts.len() - 1] - starts[0];
    assert!(spread >= 3000, "200 runs at 50/s took only {spread} ms");
    let ran = entries(&log);
    for process in ["p1", "p2"] {
        assert!(
            ran.iter().any(|(word, _)| word == process),
            "process {process} ran nothing"
        );
    }
    submitter.shutdown().await;
    let _ = std::fs::remove_file(log);
}

conformance!(a_global_rate_limit_holds_across_two_processes);

/// A zero count or a zero window is refused at build, naming the setting.
#[test]
fn a_zero_global_rate_limit_is_refused() {
    for (n, per) in [(0, Duration::from_secs(1)), (5, Duration::ZERO)] {
        let err = TaskRunner::builder()
            .queue(
                "llm",
                QueueConfig::new().global_rate_limit(RateLimit::new(n, per)),
            )
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::InvalidSetting {
                    setting: "global_rate_limit",
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("`global_rate_limit`"), "{message}");
        assert!(message.contains("llm"), "{message}");
    }
}
