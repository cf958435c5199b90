//! Parking: a worker whose queue ran dry waits, as a tokio task parked on its waker, to be
//! handed a start from any queue; the start wakes it (a waker's wake) instead of spawning a
//! worker.
//!
//! Why it waits on a waker and not one scheduler pass: on a current-thread runtime,
//! `block_on` polls its own future (the caller's enqueue-and-await) only once the run queue
//! is empty; a worker that yields once to wait for a start stays in the run queue, so it
//! polls again, finds nothing and leaves before the caller enqueues the next task, and every
//! start of an idle round trip paid a `tokio::spawn`. A worker parked on its waker is not in
//! the run queue: the caller runs, and its start wakes the worker.
//!
//! The hand-over itself is [`Lot`], synchronous and generic over what is handed, so that the
//! loom models (`park/loom_tests.rs`) can check it: a job handed to a parked worker is taken
//! exactly once, by the worker or, if the worker's wait ends at the same moment (dismissed,
//! or its runtime shut down), by whoever ends it.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::sync::{lock, Mutex};

#[cfg(all(test, taskrunner_loom))]
mod loom_tests;
#[cfg(all(test, not(taskrunner_loom)))]
mod tests;
mod wait;

pub(crate) use wait::{enter, wait, Handed, Parking};

/// The workers waiting for a start, each with the key of the runtime it waits on: a start
/// is handed only to a worker of the runtime it is made in (a worker parked on another
/// runtime, say a current-thread one nobody drives now, might never run it).
///
/// Lock order: `parked`, then a [`Spot`]'s `state`. A job is put into a spot only under the
/// `parked` lock, by the start that took the spot off the list; so a worker that finds
/// itself off the list (under the same lock) finds its job there too, or its dismissal.
pub(crate) struct Lot<J, K> {
    parked: Mutex<Parked<J, K>>,
}

struct Parked<J, K> {
    spots: Vec<(K, Arc<Spot<J>>)>,
    /// Set by [`Lot::close`]: no worker parks any more.
    closed: bool,
}

/// Where one parked worker is handed its next job, or told to end.
pub(crate) struct Spot<J> {
    state: Mutex<SpotState<J>>,
}

struct SpotState<J> {
    job: Option<J>,
    /// The parked worker's waker, woken by the hand-over or the dismissal.
    waker: Option<Waker>,
    /// The lot was closed while the worker was on it: it ends.
    dismissed: bool,
}

impl<J, K> Default for Lot<J, K> {
    fn default() -> Self {
        Lot {
            parked: Mutex::new(Parked {
                spots: Vec::new(),
                closed: false,
            }),
        }
    }
}

impl<J> Default for Spot<J> {
    fn default() -> Self {
        Spot {
            state: Mutex::new(SpotState {
                job: None,
                waker: None,
                dismissed: false,
            }),
        }
    }
}

impl<J> Spot<J> {
    /// The job handed to this spot, if one was.
    pub(crate) fn take(&self) -> Option<J> {
        lock(&self.state).job.take()
    }

    /// The parked worker's wait: `Some(job)` once one is handed, `None` once dismissed,
    /// pending (with `cx`'s waker kept for the hand-over) until then.
    pub(crate) fn poll_job(&self, cx: &Context<'_>) -> Poll<Option<J>> {
        let mut state = lock(&self.state);
        if let Some(job) = state.job.take() {
            return Poll::Ready(Some(job));
        }
        if state.dismissed {
            return Poll::Ready(None);
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<J, K: PartialEq> Lot<J, K> {
    /// Puts a worker's spot on the list, under the key of its runtime. False, leaving it
    /// off, if the lot is closed or `max` workers wait already: the worker ends instead.
    pub(crate) fn park(&self, key: K, spot: &Arc<Spot<J>>, max: usize) -> bool {
        let mut parked = lock(&self.parked);
        if parked.closed || parked.spots.len() >= max {
            return false;
        }
        parked.spots.push((key, Arc::clone(spot)));
        true
    }

    /// Hands `job` to the worker parked last on the runtime `key` names (asked only if a
    /// worker is parked) and wakes it; gives the job back if none is.
    pub(crate) fn hand(&self, key: impl FnOnce() -> Option<K>, job: J) -> Result<(), J> {
        let mut parked = lock(&self.parked);
        if parked.spots.is_empty() {
            return Err(job);
        }
        let Some(key) = key() else {
            return Err(job);
        };
        let Some(at) = parked.spots.iter().rposition(|(k, _)| *k == key) else {
            return Err(job);
        };
        let (_, spot) = parked.spots.swap_remove(at);
        let waker = {
            let mut state = lock(&spot.state);
            state.job = Some(job);
            state.waker.take()
        };
        drop(parked);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// The worker of `spot` stops waiting (its future is dropped): `None` if it was still on
    /// the list (and now is not), or the job a start handed it meanwhile.
    pub(crate) fn leave(&self, spot: &Arc<Spot<J>>) -> Option<J> {
        let mut parked = lock(&self.parked);
        match parked.spots.iter().position(|(_, p)| Arc::ptr_eq(p, spot)) {
            Some(i) => {
                parked.spots.swap_remove(i);
                None
            }
            // A start took it off the list, and put its job in under this lock (or a close
            // dismissed it).
            None => spot.take(),
        }
    }
}

impl<J, K> Lot<J, K> {
    /// Ends every parked worker's wait (they end), and parks no worker any more.
    pub(crate) fn close(&self) {
        let wakers: Vec<Waker> = {
            let mut parked = lock(&self.parked);
            parked.closed = true;
            let spots = std::mem::take(&mut parked.spots);
            spots
                .into_iter()
                .filter_map(|(_, spot)| {
                    let mut state = lock(&spot.state);
                    state.dismissed = true;
                    state.waker.take()
                })
                .collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }
}

impl<J, K> Drop for Lot<J, K> {
    /// The runner is gone: its parked workers end.
    fn drop(&mut self) {
        self.close();
    }
}
