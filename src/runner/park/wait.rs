//! A worker's wait for a start, on the runner's [`Lot`](super::Lot): parked on its waker,
//! holding the runner only weakly, so that a runner nobody holds any more is dropped and
//! dismisses it.

use std::sync::{Arc, Weak};

use tokio::runtime::Id;

use super::Spot;
use crate::runner::Shared;
use crate::task::Job;

/// What a start hands a parked worker: the task, which holds a slot of its queue, and the
/// runner, held strongly from the start to the worker's taking it, so that a task handed
/// is never dropped with its runner unrun.
pub(crate) type Handed = (Arc<Shared>, Arc<dyn Job>);

/// The spot a worker parks in: made the first time it parks, and reused.
pub(crate) type Parking = Spot<Handed>;

/// At most this many workers of a runner wait for a start at once; another one whose queue
/// runs dry ends. Each holds its tokio task and its attempt block (at most 1 KiB kept).
pub(crate) const PARKED_MAX: usize = 8;

/// Ends a parked worker's wait if its park is dropped before it ends (its runtime shut
/// down): takes it off the list, and ends the job a start may have handed it (see
/// [`Shared::abandon`]).
struct Unpark<'a> {
    shared: &'a Weak<Shared>,
    parking: &'a Arc<Parking>,
    done: bool,
}

impl Drop for Unpark<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // With the runner gone, no start can have handed a job (it would hold the runner).
        let handed = match self.shared.upgrade() {
            Some(shared) => shared.parked.leave(self.parking),
            None => self.parking.take(),
        };
        if let Some((shared, job)) = handed {
            shared.abandon(Some(job));
        }
    }
}

/// Parks a worker of the runtime `key` on `shared`'s lot; false if it may not (the lot is
/// full or closed): the worker ends.
pub(crate) fn enter(shared: &Shared, key: Id, parking: &Arc<Parking>) -> bool {
    shared.parked.park(key, parking, PARKED_MAX)
}

/// Waits, parked by [`enter`], until a start hands this worker a task (`Some`) or the lot
/// dismisses it (`None`: the runner was dropped or shut down). If the wait is dropped (its
/// runtime shut down), the worker leaves the lot, and a task handed meanwhile ends
/// [`TaskError::Shutdown`](crate::TaskError::Shutdown).
pub(crate) async fn wait(shared: Weak<Shared>, parking: &Arc<Parking>) -> Option<Handed> {
    let mut unpark = Unpark {
        shared: &shared,
        parking,
        done: false,
    };
    let handed = std::future::poll_fn(|cx| parking.poll_job(cx)).await;
    unpark.done = true;
    handed
}

impl Shared {
    /// The key of the runtime a start made here would spawn on: the current one, else the
    /// remembered one.
    pub(crate) fn runtime_key(&self) -> Option<Id> {
        self.runtime.handle().map(|handle| handle.id())
    }
}
