//! Durable schedules (`TaskRunner::schedule_run`) in the conformance style: every test runs
//! against SQLite and PostgreSQL (skipped without `TASKRUNNER_PG_URL`). Real time, short
//! intervals (100–300 ms), bounded waits.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

#[macro_use]
mod store_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use store_support::{eventually, TestDb};
use taskrunner::{
    Overlap, QueueConfig, RunFilter, RunStatus, Schedule, ScheduleError, ScheduleRunError,
    ScheduleStatus, TaskContext, TaskDef, TaskRunner,
};

const POLL: Duration = Duration::from_millis(20);
const LIMIT: Duration = Duration::from_secs(15);

fn tick(
    calls: Arc<AtomicUsize>,
    busy: Duration,
) -> TaskDef<
    impl Fn(TaskContext, String) -> futures::future::BoxFuture<'static, Result<String, String>> + Clone,
> {
    TaskDef::new("tick", move |ctx: TaskContext, what: String| {
        let calls = Arc::clone(&calls);
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(busy).await;
            Ok(format!("{what} at {}", ctx.call_id()))
        }) as futures::future::BoxFuture<'static, Result<String, String>>
    })
    .queue("work")
}

fn runner<H, Fut, T, E>(store: taskrunner::store::Store, def: Option<&TaskDef<H>>) -> TaskRunner
where
    H: Fn(TaskContext, String) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<T, E>> + Send + 'static,
    T: serde::Serialize + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let mut builder = TaskRunner::builder()
        .queue("work", QueueConfig::new().concurrency(4))
        .store(store)
        .poll_interval(POLL);
    if let Some(def) = def {
        builder = builder.register(def);
    }
    builder.build().unwrap()
}

/// A process that runs nothing: it manages schedules only.
fn admin(store: taskrunner::store::Store) -> TaskRunner {
    TaskRunner::builder()
        .store(store)
        .poll_interval(POLL)
        .build()
        .unwrap()
}

/// The nominal fire times (ms) of the schedule's runs, from their call ids.
async fn fired(runner: &TaskRunner, name: &str) -> Vec<i64> {
    let runs = runner
        .list_runs(RunFilter::new().name("tick").limit(1000))
        .await
        .unwrap();
    let mut times: Vec<i64> = runs
        .iter()
        .filter_map(|r| {
            r.call_id
                .as_deref()?
                .strip_prefix(&format!("{name}@"))?
                .parse()
                .ok()
        })
        .collect();
    times.sort_unstable();
    times
}

// ===== the suite =====

/// Two processes share a schedule (both registered the definition, both called
/// `schedule_run`): over a span of fires, each occurrence fires once.
async fn two_runners_fire_each_occurrence_once(db: TestDb) {
    let calls = Arc::new(AtomicUsize::new(0));
    let def = tick(Arc::clone(&calls), Duration::ZERO);
    let a = runner(db.store.clone(), Some(&def));
    let b = runner(db.reopen().await, Some(&def));
    let every = Schedule::every(Duration::from_millis(100)).overlap(Overlap::Allow);
    let on_a = a
        .schedule_run("ticker", every.clone(), &def, "ping".to_owned())
        .await
        .unwrap();
    // The same start-up code on the other process keeps the stored schedule.
    let on_b = b
        .schedule_run("ticker", every, &def, "other input".to_owned())
        .await
        .unwrap();
    eventually(LIMIT, "8 fires", || async {
        on_b.info().await.unwrap().unwrap().runs >= 8
    })
    .await;
    assert!(on_a.stop().await.unwrap());
    let info = on_b.info().await.unwrap().unwrap();
    assert_eq!(info.status, ScheduleStatus::Stopped);
    assert_eq!(info.next_run_at, None);
    eventually(LIMIT, "every run to finish", || async {
        a.list_runs(
            RunFilter::new()
                .name("tick")
                .status(RunStatus::Completed)
                .limit(1000),
        )
        .await
        .unwrap()
        .len() as u64
            == info.runs
    })
    .await;
    let times = fired(&a, "ticker").await;
    let distinct: HashSet<_> = times.iter().collect();
    assert_eq!(
        distinct.len(),
        times.len(),
        "an occurrence fired twice: {times:?}"
    );
    assert_eq!(times.len() as u64, info.runs);
    assert_eq!(calls.load(Ordering::SeqCst) as u64, info.runs);
    // Occurrences are 100 ms apart; any passed over (a busy machine) are counted as skipped.
    let span = (times[times.len() - 1] - times[0]) / 100 + 1;
    assert!(
        times.windows(2).all(|w| (w[1] - w[0]) % 100 == 0),
        "{times:?}"
    );
    assert_eq!(span as u64, info.runs + info.skipped, "{times:?} {info:?}");
    let outputs = a
        .list_runs(RunFilter::new().name("tick").limit(1))
        .await
        .unwrap();
    assert!(
        outputs[0]
            .output
            .as_ref()
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("ping at ticker@"),
        "the first process's input was kept"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// Pause, resume and stop by name from a process that does not run the definition; a
/// paused schedule does not fire and does not catch up on resume.
async fn pause_resume_stop_from_another_process(db: TestDb) {
    let calls = Arc::new(AtomicUsize::new(0));
    let def = tick(Arc::clone(&calls), Duration::ZERO);
    let worker = runner(db.store.clone(), Some(&def));
    worker
        .schedule_run(
            "pulse",
            Schedule::every(Duration::from_millis(100)),
            &def,
            "x".to_owned(),
        )
        .await
        .unwrap();
    let admin = admin(db.reopen().await);
    let pulse = admin.durable_schedule("pulse").unwrap();
    eventually(LIMIT, "2 fires", || async {
        pulse.info().await.unwrap().unwrap().runs >= 2
    })
    .await;
    assert!(pulse.pause().await.unwrap());
    assert!(!pulse.pause().await.unwrap(), "already paused");
    let paused = pulse.info().await.unwrap().unwrap();
    assert_eq!(
        (paused.status, paused.next_run_at),
        (ScheduleStatus::Paused, None)
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        pulse.info().await.unwrap().unwrap().runs,
        paused.runs,
        "fired while paused"
    );
    assert!(pulse.resume().await.unwrap());
    eventually(LIMIT, "a fire after resuming", || async {
        pulse.info().await.unwrap().unwrap().runs > paused.runs
    })
    .await;
    let resumed = pulse.info().await.unwrap().unwrap();
    assert!(
        resumed.runs <= paused.runs + 2,
        "fires missed while paused were caught up: {resumed:?}"
    );
    assert!(pulse.stop().await.unwrap());
    assert!(!pulse.stop().await.unwrap());
    let stopped = pulse.info().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pulse.info().await.unwrap().unwrap().runs, stopped.runs);
    let all = admin.durable_schedules().await.unwrap();
    assert_eq!((all.len(), all[0].status), (1, ScheduleStatus::Stopped));
    assert!(admin
        .durable_schedule("nope")
        .unwrap()
        .info()
        .await
        .unwrap()
        .is_none());
    worker.shutdown().await;
    admin.shutdown().await;
}

/// Fires missed while no process ran the definition are coalesced into one run, and the
/// occurrences passed over are counted as skipped.
async fn missed_fires_are_coalesced_into_one(db: TestDb) {
    let calls = Arc::new(AtomicUsize::new(0));
    let def = tick(Arc::clone(&calls), Duration::ZERO);
    // Created by a process that does not run `tick`: nothing fires.
    let admin = admin(db.store.clone());
    let nightly = admin
        .schedule_run(
            "catchup",
            Schedule::every(Duration::from_millis(300)),
            &def,
            "late".to_owned(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await; // 300, 600, 900 missed
    assert_eq!(nightly.info().await.unwrap().unwrap().runs, 0);
    let worker = runner(db.reopen().await, Some(&def));
    let first = loop {
        let info = nightly.info().await.unwrap().unwrap();
        if info.runs >= 1 {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(first.runs, 1, "one run for the missed fires: {first:?}");
    assert!(
        first.skipped >= 2,
        "the others counted as skipped: {first:?}"
    );
    nightly.stop().await.unwrap();
    worker.shutdown().await;
}

/// With `Overlap::Skip`, a fire that finds the previous run unfinished is skipped and counted,
/// across processes; a failed run is counted in `failures` with its error.
async fn overlap_skip_and_failures_are_counted(db: TestDb) {
    let slow = TaskDef::new("slow", |_: TaskContext, fail: bool| async move {
        tokio::time::sleep(Duration::from_millis(350)).await;
        if fail {
            Err::<(), _>("disk full".to_owned())
        } else {
            Ok(())
        }
    })
    .queue("work");
    let worker = TaskRunner::builder()
        .queue("work", QueueConfig::new().concurrency(4))
        .store(db.store.clone())
        .register(&slow)
        .poll_interval(POLL)
        .build()
        .unwrap();
    let every = worker
        .schedule_run(
            "slow",
            Schedule::every(Duration::from_millis(100)),
            &slow,
            true,
        )
        .await
        .unwrap();
    eventually(LIMIT, "a failure and skipped fires", || async {
        let info = every.info().await.unwrap().unwrap();
        info.failures >= 1 && info.skipped >= 2
    })
    .await;
    every.stop().await.unwrap();
    let info = every.info().await.unwrap().unwrap();
    assert_eq!(info.last_error.as_deref(), Some("disk full"));
    let runs = worker
        .list_runs(RunFilter::new().name("slow").limit(100))
        .await
        .unwrap();
    assert_eq!(runs.len() as u64, info.runs);
    worker.shutdown().await;
}

/// Bad schedules are refused with the schedule error, as `TaskRunner::schedule` does.
async fn bad_schedules_are_refused(db: TestDb) {
    let def = tick(Arc::new(AtomicUsize::new(0)), Duration::ZERO);
    let runner = runner(db.store.clone(), Some(&def));
    let zero = runner
        .schedule_run("z", Schedule::every(Duration::ZERO), &def, String::new())
        .await;
    assert!(
        matches!(zero, Err(ScheduleRunError::Schedule(ScheduleError::ZeroInterval { ref name })) if name == "z"),
        "{zero:?}"
    );
    let empty = runner
        .schedule_run(
            "",
            Schedule::every(Duration::from_secs(1)),
            &def,
            String::new(),
        )
        .await;
    assert!(matches!(
        empty,
        Err(ScheduleRunError::Schedule(ScheduleError::EmptyName))
    ));
    assert!(runner.durable_schedules().await.unwrap().is_empty());
    runner.shutdown().await;
}

#[tokio::test]
async fn a_runner_without_a_store_cannot_schedule_runs() {
    let def = tick(Arc::new(AtomicUsize::new(0)), Duration::ZERO);
    let runner = TaskRunner::new();
    let result = runner
        .schedule_run(
            "t",
            Schedule::every(Duration::from_secs(1)),
            &def,
            String::new(),
        )
        .await;
    assert!(matches!(
        result,
        Err(ScheduleRunError::Store(taskrunner::StoreError::NoStore))
    ));
}

// ===== instantiation for both backends =====

conformance!(
    two_runners_fire_each_occurrence_once,
    pause_resume_stop_from_another_process,
    missed_fires_are_coalesced_into_one,
    overlap_skip_and_failures_are_counted,
    bad_schedules_are_refused,
);
