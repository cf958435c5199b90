//! Parking: a worker whose queue ran dry waits a moment to be handed a start from any
//! queue, which saves that start a spawn.

use std::sync::Arc;
use std::task::Poll;

use super::Shared;
use crate::sync::lock_std;
use crate::task::Job;

/// Where a parked worker is handed its next job.
#[derive(Default)]
pub(crate) struct Parking {
    /// The job a start handed this worker. Locked under `Shared::parked` when handed over.
    pub(super) job: std::sync::Mutex<Option<Arc<dyn Job>>>,
    pub(super) waker: futures::task::AtomicWaker,
}

/// Takes a parked worker off the list if its park is dropped before it ends (its runtime
/// shut down). Dropped before the worker took a job a start handed it, it ends that job (see
/// [`Shared::abandon`]).
struct Unpark<'a> {
    shared: &'a Shared,
    parking: &'a Arc<Parking>,
    /// The park ended normally: off the list, and any job handed over taken.
    done: bool,
}

impl Drop for Unpark<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let handed = {
            let mut parked = lock_std(&self.shared.parked);
            if let Some(i) = parked.iter().position(|p| Arc::ptr_eq(p, self.parking)) {
                parked.swap_remove(i);
            }
            lock_std(&self.parking.job).take()
        };
        self.shared.abandon(handed);
    }
}

impl Shared {
    /// Parks a worker that ran out of work until the scheduler comes back to it once: if a
    /// start hands it a job meanwhile, returns the job; else takes it off the list.
    pub(crate) async fn park(&self, parking: &Arc<Parking>) -> Option<Arc<dyn Job>> {
        lock_std(&self.parked).push(Arc::clone(parking));
        // If this future is dropped (its runtime shut down), the worker leaves the list.
        let mut unpark = Unpark {
            shared: self,
            parking,
            done: false,
        };
        let mut yielded = false;
        let job = std::future::poll_fn(|cx| {
            if let Some(job) = lock_std(&parking.job).take() {
                return Poll::Ready(Some(job));
            }
            if !yielded {
                // Let whatever is ready run first: it may start a task.
                yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            {
                let mut parked = lock_std(&self.parked);
                if let Some(i) = parked.iter().position(|p| Arc::ptr_eq(p, parking)) {
                    parked.swap_remove(i);
                    return Poll::Ready(None);
                }
            }
            // A start took this worker off the list: its job is on the way.
            parking.waker.register(cx.waker());
            match lock_std(&parking.job).take() {
                Some(job) => Poll::Ready(Some(job)),
                None => Poll::Pending,
            }
        })
        .await;
        unpark.done = true;
        job
    }
}
