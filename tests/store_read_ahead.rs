//! The default, adaptive read-ahead (issue 23, point 2): a process that ends its runs fast
//! claims runs beyond its free slots, and the heartbeat hands back those that wait for a slot
//! longer than one heartbeat, so a second process with free slots runs them. Process A is
//! this test's runner (concurrency 1); process B is a real child process (this test binary
//! again, concurrency 8). Both backends.
#![cfg(all(feature = "sqlite", feature = "postgres", unix))]

#[macro_use]
mod store_support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use store_support::faults::{self, append, kill};
use store_support::{open_locator, TestDb};
use taskrunner::{QueueConfig, RunFilter, RunStatus, TaskContext, TaskDef, TaskRunner};

/// Runs below this end at once; the others take [`SLOW`].
const WARM: u32 = 60;
const SLOW_RUNS: u32 = 6;
const SLOW: Duration = Duration::from_secs(4);
/// A third of it is the heartbeat: 200 ms.
const LEASE: Duration = Duration::from_millis(600);
/// How soon after B is up each run B takes must start: a run claimed ahead is handed back
/// within one and a half heartbeats of its claim (300 ms), then B's claim (notified on
/// PostgreSQL, a 50 ms poll on SQLite), with room for a loaded machine; without the hand-back
/// B would wait for A's one slot, [`SLOW`] a run.
const PROMPT: Duration = Duration::from_millis(2_500);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Warm runs end at once; a slow run logs `<process> <n> <ms>` and works [`SLOW`]. The
/// first slow run A starts counts, in `held`, the slow runs claimed then (itself included),
/// through `observer`.
fn work(
    process: &'static str,
    log: Option<std::path::PathBuf>,
    held: Arc<AtomicUsize>,
    observer: Option<TaskRunner>,
) -> TaskDef<
    impl Fn(TaskContext, u32) -> futures::future::BoxFuture<'static, Result<u32, String>> + Clone,
> {
    TaskDef::new("work", move |_: TaskContext, n: u32| {
        let (log, held, observer) = (log.clone(), Arc::clone(&held), observer.clone());
        Box::pin(async move {
            if n < WARM {
                return Ok(n);
            }
            if let Some(log) = &log {
                append(log, &format!("{process} {n} {}", now_ms()));
            }
            if let Some(observer) = observer.filter(|_| held.load(Ordering::SeqCst) == 0) {
                let running = observer
                    .list_runs(RunFilter::new().status(RunStatus::Running).limit(100))
                    .await
                    .unwrap();
                // Ends of warm runs may not be stored yet: count the slow ones (this one
                // among them).
                let slow = running
                    .iter()
                    .filter(|r| r.input.parse::<u32>().is_ok_and(|n| n >= WARM))
                    .count();
                held.store(slow.max(1), Ordering::SeqCst);
            }
            tokio::time::sleep(SLOW).await;
            Ok(n)
        }) as futures::future::BoxFuture<'static, Result<u32, String>>
    })
    .queue("agents")
}

/// Process B: claims and runs `work` at concurrency 8 until killed (or 60 s); logs `ready`.
#[test]
fn read_ahead_child() {
    let Some(log) = faults::child_log() else {
        return;
    };
    let locator = std::env::var("TASKRUNNER_TEST_CHILD_STORE").expect("a child has a store");
    faults::runtime().block_on(async move {
        let def = work("b", Some(log.clone()), Arc::default(), None);
        let _runner = TaskRunner::builder()
            .queue("agents", QueueConfig::new().concurrency(8))
            .store(open_locator(&locator).await)
            .poll_interval(Duration::from_millis(50))
            .lease(LEASE)
            .register(&def)
            .build()
            .unwrap();
        append(&log, &format!("ready 0 {}", now_ms()));
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
}

/// `(process, run, ms)` of each line of `log`.
fn lines(log: &Path) -> Vec<(String, u32, u64)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let mut words = line.split(' ');
            let process = words.next().unwrap().to_owned();
            let n = words.next().unwrap().parse().unwrap();
            let ms = words.next().unwrap().parse().unwrap();
            (process, n, ms)
        })
        .collect()
}

/// A (concurrency 1) drains 60 instant runs, so its read-ahead grows and it claims the six
/// slow runs behind them while it runs the first. B starts with eight free slots: every slow
/// run B takes starts within [`PROMPT`] of B being up, and B takes at least four of the five
/// A held (without the hand-back they would wait in A for its one slot, [`SLOW`] each).
async fn runs_claimed_ahead_go_to_a_process_with_free_slots(db: TestDb) {
    let log = faults::log_path("taskrunner_read_ahead_log");
    let held = Arc::new(AtomicUsize::new(0));
    let observer = faults::submitter(&db);
    let def = work(
        "a",
        Some(log.clone()),
        Arc::clone(&held),
        Some(observer.clone()),
    );
    let a = TaskRunner::builder()
        .queue("agents", QueueConfig::new().concurrency(1))
        .store(db.store.clone())
        .poll_interval(Duration::from_millis(50))
        .lease(LEASE)
        .register(&def)
        .build()
        .unwrap();
    let runs = a.submit_many(&def, 0..WARM + SLOW_RUNS).await.unwrap();
    // A starts its first slow run; the others wait in A, claimed ahead.
    tokio::time::timeout(Duration::from_secs(30), async {
        while held.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("A starts a slow run");
    let held = held.load(Ordering::SeqCst);
    assert!(
        held >= 3,
        "A held {held} slow runs when it started the first: it claimed too few ahead for the test to mean anything"
    );
    let mut b = faults::spawn("read_ahead_child", &db, &log, &[]);
    let outputs = faults::outputs(runs).await;
    kill(&mut b);
    assert_eq!(outputs, (0..WARM + SLOW_RUNS).collect::<Vec<_>>());
    let lines = lines(&log);
    let ready = lines
        .iter()
        .find(|(p, _, _)| p == "ready")
        .map(|&(_, _, ms)| ms)
        .expect("B was up");
    let by_b: Vec<u64> = lines
        .iter()
        .filter(|(p, _, _)| p == "b")
        .map(|&(_, _, ms)| ms.saturating_sub(ready))
        .collect();
    eprintln!("A held {held}; B started runs {by_b:?} ms after it was up");
    assert!(
        by_b.len() >= 4,
        "B ran {} slow runs: A kept what it claimed ahead",
        by_b.len()
    );
    for waited in &by_b {
        assert!(
            Duration::from_millis(*waited) <= PROMPT,
            "B started a run {waited} ms after it was up"
        );
    }
    a.shutdown().await;
    observer.shutdown().await;
    let _ = std::fs::remove_file(log);
}

conformance!(runs_claimed_ahead_go_to_a_process_with_free_slots);
