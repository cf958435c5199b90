//! The lot's rules that need no interleaving: runtimes, the bound, the close.

use std::sync::Arc;
use std::task::{Context, Poll};

use super::{Lot, Spot};

fn poll(spot: &Spot<u32>) -> Poll<Option<u32>> {
    spot.poll_job(&Context::from_waker(std::task::Waker::noop()))
}

#[test]
fn a_start_goes_only_to_a_worker_of_its_runtime() {
    let lot = Lot::<u32, u8>::default();
    let (a, b) = (Arc::new(Spot::default()), Arc::new(Spot::default()));
    assert!(lot.park(1, &a, 8));
    assert!(lot.park(2, &b, 8));
    assert_eq!(poll(&a), Poll::Pending);
    assert_eq!(lot.hand(|| Some(3), 5), Err(5), "no worker of runtime 3");
    assert_eq!(lot.hand(|| None, 5), Err(5), "no runtime at all");
    assert_eq!(lot.hand(|| Some(1), 6), Ok(()));
    assert_eq!(poll(&a), Poll::Ready(Some(6)));
    assert_eq!(
        poll(&b),
        Poll::Pending,
        "the other runtime's worker still waits"
    );
    assert_eq!(
        lot.hand(|| Some(1), 7),
        Err(7),
        "runtime 1's worker is busy"
    );
    assert_eq!(lot.leave(&b), None, "b was still parked");
}

#[test]
fn a_full_lot_parks_no_more_workers() {
    let lot = Lot::<u32, u8>::default();
    let spots: Vec<Arc<Spot<u32>>> = (0..3).map(|_| Arc::default()).collect();
    assert!(lot.park(0, &spots[0], 2));
    assert!(lot.park(0, &spots[1], 2));
    assert!(!lot.park(0, &spots[2], 2));
    assert_eq!(lot.hand(|| Some(0), 1), Ok(()));
    assert_eq!(
        poll(&spots[1]),
        Poll::Ready(Some(1)),
        "the last parked first"
    );
}

#[test]
fn a_close_dismisses_every_parked_worker_and_wakes_it() {
    let lot = Lot::<u32, u8>::default();
    let spot = Arc::new(Spot::default());
    assert!(lot.park(0, &spot, 8));
    let woken = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let waker = waker_fn(Arc::clone(&woken));
    assert_eq!(spot.poll_job(&Context::from_waker(&waker)), Poll::Pending);
    lot.close();
    assert!(woken.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(poll(&spot), Poll::Ready(None));
    assert!(!lot.park(0, &spot, 8));
    assert_eq!(lot.hand(|| Some(0), 2), Err(2));
}

#[test]
fn a_dropped_lot_dismisses_its_workers() {
    let lot = Lot::<u32, u8>::default();
    let spot = Arc::new(Spot::default());
    assert!(lot.park(0, &spot, 8));
    drop(lot);
    assert_eq!(poll(&spot), Poll::Ready(None));
}

fn waker_fn(flag: Arc<std::sync::atomic::AtomicBool>) -> std::task::Waker {
    struct Flag(Arc<std::sync::atomic::AtomicBool>);
    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    std::task::Waker::from(Arc::new(Flag(flag)))
}

// ===== the runner's workers, parked =====

use std::time::Duration;

use crate::{Task, TaskContext, TaskRunner};

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The tokio task a handler runs in.
async fn worker_task(runner: &TaskRunner) -> tokio::task::Id {
    let task = Task::new("which", |_: TaskContext| async {
        Ok::<_, String>(tokio::task::id())
    });
    runner.enqueue_task(task).unwrap().await.unwrap()
}

/// On a current-thread runtime, one enqueue-and-await after the other: the worker that ran
/// the first task parks on its waker and is handed every next one (no spawn a task).
#[test]
fn an_idle_round_trip_wakes_the_parked_worker_instead_of_spawning() {
    current_thread().block_on(async {
        let runner = TaskRunner::new();
        let first = worker_task(&runner).await;
        for _ in 0..50 {
            assert_eq!(worker_task(&runner).await, first, "the same worker");
        }
    });
}

/// Parked workers end when the runner is dropped, and when it shuts down; and a runtime
/// dropped with a worker parked on it does not hang.
#[test]
fn parked_workers_end_with_the_runner_and_at_shutdown() {
    let rt = current_thread();
    rt.block_on(async {
        let alive = || {
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        };
        let before = alive();
        let runner = TaskRunner::new();
        worker_task(&runner).await;
        let parked = alive();
        assert!(parked > before, "a worker waits, parked");
        drop(runner);
        tokio::task::yield_now().await;
        assert!(alive() < parked, "the dropped runner's worker ended");

        let runner = TaskRunner::new();
        worker_task(&runner).await;
        let parked = alive();
        runner.shutdown().await;
        tokio::task::yield_now().await;
        assert!(alive() < parked, "the shut-down runner's worker ended");
        // A runner kept (not dropped) leaves a worker parked on the runtime dropped below.
        let kept = TaskRunner::new();
        worker_task(&kept).await;
        std::mem::forget(kept);
    });
    drop(rt);
}

/// A start is handed only to a worker of the runtime it is made in: a worker parked on a
/// current-thread runtime nobody drives now must not get it (it would never run).
#[test]
fn a_start_is_not_handed_to_a_worker_of_an_undriven_runtime() {
    let runner = TaskRunner::new();
    let idle = current_thread();
    let parked_on = idle.block_on(worker_task(&runner));
    let other = current_thread();
    let ran_in = other.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), worker_task(&runner))
            .await
            .expect("the task runs on the runtime that started it")
    });
    assert_ne!(ran_in, parked_on);
    drop(idle);
}
