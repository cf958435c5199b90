//! The durable store under faults (issue 25), the clock's part: lease and schedule decisions
//! never trust one process's clock, and a worker never rescues its own live runs. A process
//! whose clock is off is a store opened with `with_clock_skew` (what `faketime` would do to
//! the whole process). Both backends.
#![cfg(all(feature = "sqlite", feature = "postgres", unix))]

#[macro_use]
mod store_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use store_support::faults::{self, raw};
use store_support::{eventually, TestDb};
use taskrunner::store::Store;
use taskrunner::{QueueConfig, RunFilter, RunStatus, Schedule, TaskContext, TaskDef, TaskRunner};

const SKEW_MS: i64 = 5_000;

fn builder(store: Store) -> taskrunner::TaskRunnerBuilder {
    TaskRunner::builder()
        .queue("work", QueueConfig::new().concurrency(4))
        .store(store)
        .poll_interval(Duration::from_millis(50))
}

fn counted(
    name: &'static str,
    starts: &Arc<AtomicUsize>,
    runs_for: Duration,
) -> TaskDef<impl Fn(TaskContext, u32) -> futures::future::BoxFuture<'static, Result<u32, String>>>
{
    let starts = Arc::clone(starts);
    TaskDef::new(name, move |_: TaskContext, n: u32| {
        let starts = Arc::clone(&starts);
        Box::pin(async move {
            starts.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(runs_for).await;
            Ok(n)
        }) as futures::future::BoxFuture<'static, Result<u32, String>>
    })
    .queue("work")
}

/// A process whose clock is 5 s ahead, with a heartbeat (and so a rescue) of its own, never
/// takes the run a live worker is renewing the lease of.
async fn a_fast_clock_takes_no_live_run(db: TestDb) {
    let starts = Arc::new(AtomicUsize::new(0));
    let long = counted("long", &starts, Duration::from_secs(3));
    let idle = counted("idle", &Arc::new(AtomicUsize::new(0)), Duration::ZERO);
    let worker = builder(db.store.clone())
        .register(&long)
        .lease(Duration::from_secs(1))
        .build()
        .unwrap();
    let fast = builder(db.reopen().await.with_clock_skew(SKEW_MS))
        .register(&idle)
        .lease(Duration::from_secs(1))
        .build()
        .unwrap();
    let run = worker.submit(&long, 1).await.unwrap();
    let id = run.id();
    assert_eq!(faults::outputs(vec![run]).await, [1]);
    let info = worker.run_info(id).await.unwrap().unwrap();
    assert_eq!(starts.load(Ordering::SeqCst), 1, "the live run ran twice");
    assert_eq!((info.attempts, info.recoveries), (1, 0), "{info:?}");
    fast.shutdown().await;
    worker.shutdown().await;
}

/// A process whose clock is 5 s ahead fires a durable schedule when it is due, not 5 s
/// early.
async fn a_fast_clock_fires_no_schedule_early(db: TestDb) {
    let tick = counted("tick", &Arc::new(AtomicUsize::new(0)), Duration::ZERO);
    // The schedule is made by a process with a true clock that does not fire it ...
    let maker = builder(db.store.clone()).build().unwrap();
    // ... and fired by the fast one.
    let fast = builder(db.reopen().await.with_clock_skew(SKEW_MS))
        .register(&tick)
        .build()
        .unwrap();
    let made = Instant::now();
    maker
        .schedule_run("every4", Schedule::every(Duration::from_secs(4)), &tick, 1)
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "the first fire", || async {
        !fast
            .list_runs(RunFilter::new().name("tick"))
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    let after = made.elapsed();
    assert!(
        after >= Duration::from_millis(3_500),
        "fired {after:?} after the schedule was made, due at 4 s"
    );
    fast.shutdown().await;
    maker.shutdown().await;
}

/// After an outage longer than its lease (here: the run's lease made expired, over and
/// over, as an outage leaves it), the live worker renews its run: it never rescues (and
/// runs again) a run it is running itself.
async fn a_worker_never_rescues_its_own_live_run(db: TestDb) {
    let starts = Arc::new(AtomicUsize::new(0));
    let slow = counted("slow", &starts, Duration::from_millis(2500));
    let worker = builder(db.store.clone())
        .register(&slow)
        .lease(Duration::from_millis(600))
        .build()
        .unwrap();
    let run = worker.submit(&slow, 1).await.unwrap();
    let id = run.id();
    eventually(Duration::from_secs(10), "the run to start", || async {
        starts.load(Ordering::SeqCst) == 1
    })
    .await;
    let locator = db.locator();
    let expire = async {
        loop {
            raw(
                &locator,
                "UPDATE taskrunner_runs SET lease_expires_at = 0 WHERE status = 'running'",
            )
            .await;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    };
    tokio::select! {
        _ = expire => {}
        _ = tokio::time::sleep(Duration::from_millis(2200)) => {}
    }
    assert_eq!(faults::outputs(vec![run]).await, [1]);
    let info = worker.run_info(id).await.unwrap().unwrap();
    assert_eq!(info.status, RunStatus::Completed);
    assert_eq!(
        starts.load(Ordering::SeqCst),
        1,
        "the worker rescued its own live run and ran it again: {info:?}"
    );
    worker.shutdown().await;
}

conformance!(
    a_fast_clock_takes_no_live_run,
    a_fast_clock_fires_no_schedule_early,
    a_worker_never_rescues_its_own_live_run,
);
