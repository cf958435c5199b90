//! Parking: a worker whose queue ran dry waits a moment to be handed a start from any
//! queue, which saves that start a spawn.
//!
//! The hand-over itself is [`Lot`], synchronous and generic over what is handed, so that the
//! loom model below can check it: a job handed to a parked worker is taken exactly once,
//! by the worker or, if the worker gives up at the same moment, by whoever ends its wait.

use std::sync::Arc;
use std::task::Poll;

use super::Shared;
use crate::sync::{lock, Mutex};
use crate::task::Job;

/// The workers waiting a moment for a start.
///
/// Lock order: `parked`, then a [`Spot`]'s `job`. A job is put into a spot only under the
/// `parked` lock, by the start that took the spot off the list; so a worker that finds
/// itself off the list (under the same lock) finds its job there too.
pub(crate) struct Lot<J> {
    parked: Mutex<Vec<Arc<Spot<J>>>>,
}

/// Where one parked worker is handed its next job.
///
/// The worker does not wait on it: it looks once, lets the scheduler run whatever is ready,
/// looks again and leaves. A start that comes later spawns a worker instead.
pub(crate) struct Spot<J> {
    job: Mutex<Option<J>>,
}

impl<J> Default for Lot<J> {
    fn default() -> Self {
        Lot {
            parked: Mutex::new(Vec::new()),
        }
    }
}

impl<J> Default for Spot<J> {
    fn default() -> Self {
        Spot {
            job: Mutex::new(None),
        }
    }
}

impl<J> Spot<J> {
    /// The job handed to this spot, if one was.
    pub(crate) fn take(&self) -> Option<J> {
        lock(&self.job).take()
    }
}

impl<J> Lot<J> {
    /// Puts a worker's spot on the list.
    pub(crate) fn park(&self, spot: &Arc<Spot<J>>) {
        lock(&self.parked).push(Arc::clone(spot));
    }

    /// Hands `job` to the last worker parked; gives it back if no worker is parked.
    pub(crate) fn hand(&self, job: J) -> Result<(), J> {
        let mut parked = lock(&self.parked);
        match parked.pop() {
            Some(spot) => {
                *lock(&spot.job) = Some(job);
                Ok(())
            }
            None => Err(job),
        }
    }

    /// The worker of `spot` stops waiting: `None` if it was still on the list (and now is
    /// not), or the job a start handed it meanwhile.
    pub(crate) fn leave(&self, spot: &Arc<Spot<J>>) -> Option<J> {
        let mut parked = lock(&self.parked);
        match parked.iter().position(|p| Arc::ptr_eq(p, spot)) {
            Some(i) => {
                parked.swap_remove(i);
                None
            }
            // A start took it off the list, and put its job in under this lock.
            None => spot.take(),
        }
    }
}

/// The spot a worker parks in: made the first time it parks, and reused.
pub(crate) type Parking = Spot<Arc<dyn Job>>;

/// Ends a parked worker's wait if its park is dropped before it ends (its runtime shut
/// down): takes it off the list, and ends the job a start may have handed it (see
/// [`Shared::abandon`]).
struct Unpark<'a> {
    shared: &'a Shared,
    parking: &'a Arc<Parking>,
    done: bool,
}

impl Drop for Unpark<'_> {
    fn drop(&mut self) {
        if !self.done {
            let handed = self.shared.parked.leave(self.parking);
            self.shared.abandon(handed);
        }
    }
}

impl Shared {
    /// Waits one scheduler pass for a start to hand this worker a job; `None` if none came.
    pub(crate) async fn park(&self, parking: &Arc<Parking>) -> Option<Arc<dyn Job>> {
        self.parked.park(parking);
        // If this future is dropped (its runtime shut down), the worker leaves the list.
        let mut unpark = Unpark {
            shared: self,
            parking,
            done: false,
        };
        let mut yielded = false;
        let job = std::future::poll_fn(|cx| {
            if let Some(job) = parking.take() {
                return Poll::Ready(Some(job));
            }
            if !yielded {
                // Let whatever is ready run first: it may start a task.
                yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(self.parked.leave(parking))
        })
        .await;
        unpark.done = true;
        job
    }
}

#[cfg(all(test, taskrunner_loom))]
mod loom_tests {
    use std::sync::Arc;

    use loom::thread;

    use super::{Lot, Spot};

    /// A start and a parked worker giving up at the same moment: the job is run exactly
    /// once, by the worker or by a fresh spawn.
    #[test]
    fn loom_a_job_handed_to_a_leaving_worker_is_taken_exactly_once() {
        loom::model(|| {
            let lot = Arc::new(Lot::<u32>::default());
            let spot = Arc::new(Spot::default());
            lot.park(&spot);
            let starter = {
                let lot = Arc::clone(&lot);
                thread::spawn(move || lot.hand(7).err())
            };
            let by_worker = spot.take().or_else(|| lot.leave(&spot));
            let spawned = starter.join().unwrap();
            assert_eq!(
                usize::from(by_worker == Some(7)) + usize::from(spawned == Some(7)),
                1,
                "worker {by_worker:?}, spawned {spawned:?}"
            );
            assert!(spot.take().is_none(), "nothing left behind in the spot");
        });
    }

    /// Two starts and two parked workers, one of which leaves: every job is run once.
    #[test]
    fn loom_two_starts_two_workers_lose_no_job() {
        loom::model(|| {
            let lot = Arc::new(Lot::<u32>::default());
            let (a, b) = (Arc::new(Spot::default()), Arc::new(Spot::default()));
            lot.park(&a);
            lot.park(&b);
            let starters: Vec<_> = [1, 2]
                .into_iter()
                .map(|job| {
                    let lot = Arc::clone(&lot);
                    thread::spawn(move || lot.hand(job).err())
                })
                .collect();
            // Worker `a` gives up; worker `b` waits for what it was handed.
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
}
