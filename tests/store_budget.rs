//! Global budgets on a store (issue 22, points 1 and 2): `QueueConfig::global_budget` holds
//! across processes, and `ctx.pause_queue_for` in a durable run pauses the queue in every
//! process. Two real child processes (this test binary, re-invoked) claim from one store;
//! the charges stored in any window never sum over the budget, the handlers' charges are
//! seen by the next claims, and a pause written by one process stops the other until the
//! stored time. Both backends. Bad input is refused.
#![cfg(all(feature = "sqlite", feature = "postgres", unix))]

#[macro_use]
mod store_support;

use std::process::Child;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use store_support::faults::{self, append, entries, kill};
use store_support::{open_locator, TestDb};
use taskrunner::store::{RunInfo, RunOptions};
use taskrunner::{
    Budget, ConfigError, QueueConfig, RunFilter, RunStatus, TaskContext, TaskDef, TaskRunner,
};

const MODE_ENV: &str = "TASKRUNNER_BUDGET_CHILD_MODE";
const STORE_ENV: &str = "TASKRUNNER_TEST_CHILD_STORE";
/// 1,000 units a second across both processes.
const UNITS: u64 = 1_000;
const WINDOW: Duration = Duration::from_secs(1);
/// Each run's estimate: 10 fit a window as estimated.
const ESTIMATE: u64 = 100;
const RUNS: u32 = 40;
/// How long a run's handler pauses the queue for (the run with input `PAUSER`).
const PAUSE: Duration = Duration::from_millis(1500);
const PAUSER: u32 = 1_000;

/// A run's true cost: 10 to 100, spread over the runs.
fn actual(n: u32) -> u64 {
    10 + u64::from(n * 37 % 91)
}

fn budgeted_queue() -> QueueConfig {
    QueueConfig::new()
        .concurrency(4)
        .global_budget(Budget::new(UNITS, WINDOW))
}

/// Charges its true cost at once, works 20 ms; in a child, logs `<process> <n>` first. The
/// run [`PAUSER`] pauses the queue for [`PAUSE`] instead.
fn call() -> TaskDef<
    impl Fn(TaskContext, u32) -> futures::future::BoxFuture<'static, Result<u32, String>> + Clone,
> {
    let log = faults::child_log();
    let process: u32 = std::env::var(MODE_ENV)
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    TaskDef::new("call", move |ctx: TaskContext, n: u32| {
        let log = log.clone();
        Box::pin(async move {
            if let Some(log) = &log {
                append(log, &format!("p{process} {n}"));
            }
            if n == PAUSER {
                ctx.pause_queue_for(PAUSE); // the provider said 429
            } else {
                ctx.charge(actual(n));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(n)
        }) as futures::future::BoxFuture<'static, Result<u32, String>>
    })
    .queue("llm")
}

/// The child: claims and runs `call` under the global budget until killed (or 60 s).
#[test]
fn budget_child() {
    if faults::child_log().is_none() {
        return;
    }
    let locator = std::env::var(STORE_ENV).expect("a child has a store");
    let def = call();
    faults::runtime().block_on(async move {
        let _runner = TaskRunner::builder()
            .queue("llm", budgeted_queue())
            .store(open_locator(&locator).await)
            .poll_interval(Duration::from_millis(50))
            .register(&def)
            .build()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

fn spawn_child(db: &TestDb, log: &std::path::Path, process: &str) -> Child {
    faults::spawn("budget_child", db, log, &[(MODE_ENV, process)])
}

/// A runner on `db` that declares the budgeted queue and runs nothing.
fn submitter(db: &TestDb) -> TaskRunner {
    TaskRunner::builder()
        .queue("llm", budgeted_queue())
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap()
}

fn ms(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH).unwrap().as_millis()
}

/// The most units charged by runs started in any window `[t, t + WINDOW)` (`t` a start:
/// the fullest window begins at one), and how many runs started in the busiest one.
fn fullest_window(infos: &[RunInfo]) -> (u64, usize) {
    let mut runs: Vec<(u128, u64)> = infos
        .iter()
        .map(|info| {
            let started = info.started_at.expect("a completed run has a start time");
            (ms(started), info.charged.expect("every run was charged"))
        })
        .collect();
    runs.sort_unstable();
    let window = WINDOW.as_millis();
    (0..runs.len())
        .map(|i| {
            let inside = runs[i..].partition_point(|&(s, _)| s < runs[i].0 + window);
            let units = runs[i..i + inside].iter().map(|&(_, u)| u).sum();
            (units, inside)
        })
        .fold((0, 0), |(u, n), (units, inside)| {
            (u.max(units), n.max(inside))
        })
}

/// 40 runs estimated at 100 (10 a window as estimated) whose handlers charge 10 to 100,
/// two processes claiming under a global 1,000 a second: every run completes, no window's
/// charges sum over 1,000, the budget binds, the charges were seen by the next claims (more
/// than 10 runs started in some window), and both processes ran runs.
async fn a_global_budget_holds_across_two_processes(db: TestDb) {
    let log = faults::log_path("taskrunner_budget_log");
    let def = call();
    let submitter = submitter(&db);
    let options = (0..RUNS).map(|n| (n, RunOptions::new().cost(ESTIMATE)));
    let runs = submitter.submit_many_with(&def, options).await.unwrap();
    let mut one = spawn_child(&db, &log, "1");
    let mut two = spawn_child(&db, &log, "2");
    let outputs = faults::outputs(runs).await;
    kill(&mut one);
    kill(&mut two);
    assert_eq!(outputs, (0..RUNS).collect::<Vec<_>>());
    let infos = submitter
        .list_runs(RunFilter::new().name("call").limit(RUNS + 10))
        .await
        .unwrap();
    assert_eq!(infos.len(), RUNS as usize);
    for info in &infos {
        assert_eq!(info.status, RunStatus::Completed, "{info:?}");
        let n: u32 = info.input.parse().unwrap();
        assert_eq!(info.cost, Some(ESTIMATE));
        assert_eq!(
            info.charged,
            Some(actual(n)),
            "run {n}: its charge replaced the estimate"
        );
    }
    let (units, busiest) = fullest_window(&infos);
    eprintln!("fullest window: {units} units, busiest: {busiest} runs");
    assert!(
        units <= UNITS,
        "{units} units charged within one window (budget {UNITS})"
    );
    assert!(
        units >= UNITS * 3 / 5,
        "the budget never bound: at most {units} units a window"
    );
    assert!(
        busiest > (UNITS / ESTIMATE) as usize,
        "at most {busiest} runs started in a window: the claims never saw a charge under its estimate"
    );
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

/// A run that got a 429 pauses the queue for 1.5 s: the pause's end is stored, and neither
/// process claims a run of the queue before it (both poll every 50 ms, and are told of new
/// runs on PostgreSQL); after it, the runs go.
async fn a_pause_in_one_process_stops_the_other_until_the_stored_time(db: TestDb) {
    let log = faults::log_path("taskrunner_pause_log");
    let def = call();
    let submitter = submitter(&db);
    let mut one = spawn_child(&db, &log, "1");
    let mut two = spawn_child(&db, &log, "2");
    let pauser = submitter.submit(&def, PAUSER).await.unwrap();
    let done = tokio::time::timeout(Duration::from_secs(30), pauser).await;
    assert_eq!(
        done.expect("the pausing run never finished").unwrap(),
        PAUSER
    );
    let until = db.store.queue_paused_until("llm").await.unwrap();
    let until = ms(until.expect("the pause was stored before the run's end"));
    let options = (0..10).map(|n| (n, RunOptions::new().cost(ESTIMATE)));
    let runs = submitter.submit_many_with(&def, options).await.unwrap();
    let outputs = faults::outputs(runs).await;
    kill(&mut one);
    kill(&mut two);
    assert_eq!(outputs, (0..10).collect::<Vec<_>>());
    let infos = submitter
        .list_runs(RunFilter::new().name("call"))
        .await
        .unwrap();
    let pauser = infos
        .iter()
        .find(|i| i.input == PAUSER.to_string())
        .unwrap();
    let paused_at = ms(pauser.started_at.unwrap());
    assert!(
        until >= paused_at + PAUSE.as_millis(),
        "the stored end {until} is not 1.5 s after the pausing run's start {paused_at}"
    );
    for info in infos.iter().filter(|i| i.input != PAUSER.to_string()) {
        let started = ms(info.started_at.unwrap());
        assert!(
            started >= until,
            "run {} started {} ms before the pause's end",
            info.input,
            until - started
        );
    }
    submitter.shutdown().await;
    let _ = std::fs::remove_file(log);
}

conformance!(
    a_global_budget_holds_across_two_processes,
    a_pause_in_one_process_stops_the_other_until_the_stored_time
);

/// Zero units or a zero window is refused at build, naming the setting.
#[test]
fn a_zero_global_budget_is_refused() {
    for (units, per) in [(0, Duration::from_secs(1)), (5, Duration::ZERO)] {
        let err = TaskRunner::builder()
            .queue(
                "llm",
                QueueConfig::new().global_budget(Budget::new(units, per)),
            )
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::InvalidSetting {
                    setting: "global_budget",
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("`global_budget`"), "{message}");
        assert!(message.contains("llm"), "{message}");
    }
}
