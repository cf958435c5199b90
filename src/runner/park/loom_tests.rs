//! Loom models of the hand-over to a parked worker (`RUSTFLAGS="--cfg taskrunner_loom"
//! LOOM_MAX_PREEMPTIONS=2 cargo test --release --lib loom`): a start handed to a worker is
//! run exactly once and wakes it; no start is lost when the worker's wait ends (dismissed,
//! or dropped with its runtime) at the moment of a hand-over.

use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use loom::thread;

use super::{Lot, Spot};

/// Wakes a loom thread parked in [`wait`].
struct Unpark(thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// The parked worker's wait, as `park::wait` runs it: until a job or a dismissal. The
/// thread parks between polls; a hand-over that did not wake it leaves it parked forever,
/// which loom reports.
fn wait(spot: &Spot<u32>) -> Option<u32> {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(job) = spot.poll_job(&cx) {
            return job;
        }
        thread::park();
    }
}

/// A start hands a job to a worker parked on its waker: the worker is woken (no lost
/// wake-up: loom fails a model whose thread never wakes) and runs the job once.
#[test]
fn loom_a_handed_job_wakes_the_parked_worker() {
    loom::model(|| {
        let lot = Arc::new(Lot::<u32, u8>::default());
        let spot = Arc::new(Spot::default());
        assert!(lot.park(0, &spot, 8));
        let starter = {
            let lot = Arc::clone(&lot);
            thread::spawn(move || lot.hand(|| Some(0), 7))
        };
        assert_eq!(wait(&spot), Some(7));
        assert_eq!(starter.join().unwrap(), Ok(()));
        assert!(spot.take().is_none(), "nothing left behind in the spot");
    });
}

/// The worker's idle wait ends (the lot closes: shutdown, or the runner dropped) as a start
/// hands it a job: the job is run exactly once, by the worker or by a fresh spawn.
#[test]
fn loom_a_close_and_a_hand_over_lose_no_job() {
    loom::model(|| {
        let lot = Arc::new(Lot::<u32, u8>::default());
        let spot = Arc::new(Spot::default());
        assert!(lot.park(0, &spot, 8));
        let starter = {
            let lot = Arc::clone(&lot);
            thread::spawn(move || lot.hand(|| Some(0), 7).err())
        };
        let closer = {
            let lot = Arc::clone(&lot);
            thread::spawn(move || lot.close())
        };
        let by_worker = wait(&spot);
        let spawned = starter.join().unwrap();
        closer.join().unwrap();
        assert_eq!(
            usize::from(by_worker == Some(7)) + usize::from(spawned == Some(7)),
            1,
            "worker {by_worker:?}, spawned {spawned:?}"
        );
        assert!(!lot.park(0, &spot, 8), "a closed lot parks no worker");
    });
}

/// The worker's wait is dropped (its runtime shut down) as a start hands it a job: whoever
/// ends the wait takes the job (and ends it `Shutdown`), or the start spawns: exactly once.
#[test]
fn loom_a_worker_dropped_at_a_hand_over_leaves_its_job_to_be_ended() {
    loom::model(|| {
        let lot = Arc::new(Lot::<u32, u8>::default());
        let spot = Arc::new(Spot::default());
        assert!(lot.park(0, &spot, 8));
        let starter = {
            let lot = Arc::clone(&lot);
            thread::spawn(move || lot.hand(|| Some(0), 7).err())
        };
        // The worker may have been polled once (its waker kept) before it is dropped.
        let polled = match spot.poll_job(&Context::from_waker(Waker::noop())) {
            Poll::Ready(job) => job,
            Poll::Pending => None,
        };
        let ended = polled.or_else(|| lot.leave(&spot));
        let spawned = starter.join().unwrap();
        assert_eq!(
            usize::from(ended == Some(7)) + usize::from(spawned == Some(7)),
            1,
            "ended {ended:?}, spawned {spawned:?}"
        );
        assert!(spot.take().is_none(), "nothing left behind in the spot");
    });
}

/// Two starts and two parked workers, one of which is dropped: every job is run once.
#[test]
fn loom_two_starts_two_workers_lose_no_job() {
    loom::model(|| {
        let lot = Arc::new(Lot::<u32, u8>::default());
        let (a, b) = (Arc::new(Spot::default()), Arc::new(Spot::default()));
        assert!(lot.park(0, &a, 8));
        assert!(lot.park(0, &b, 8));
        let starters: Vec<_> = [1, 2]
            .into_iter()
            .map(|job| {
                let lot = Arc::clone(&lot);
                thread::spawn(move || lot.hand(|| Some(0), job).err())
            })
            .collect();
        // Worker `a` is dropped; worker `b` takes what it was handed, if anything.
        let mut ran: Vec<u32> = a.take().or_else(|| lot.leave(&a)).into_iter().collect();
        for starter in starters {
            ran.extend(starter.join().unwrap());
        }
        ran.extend(b.take());
        ran.extend(lot.leave(&b));
        ran.sort_unstable();
        assert_eq!(ran, [1, 2]);
    });
}
