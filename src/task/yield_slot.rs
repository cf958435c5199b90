//! [`TaskContext::without_slot`]: a handler gives its queue slot back while it waits.

use std::future::Future;
use std::task::Poll;

use super::context::TaskContext;
use super::state::Phase;

impl TaskContext {
    /// Runs `fut` without the task's queue slot (and its group place): while it runs the
    /// task is [`Waiting`](crate::TaskStatus::Waiting) and its slot serves other tasks; once
    /// `fut` completes the task re-enters its queue at its priority and this returns when it
    /// has a slot again. A cancel meanwhile ends the task (its handler's future, `fut`
    /// included, is dropped, as for a running task); a timeout keeps counting.
    ///
    /// Await it from the handler's own future (the worker polling the attempt is the one
    /// woken when a slot comes back). A call while the slot is already given back (nested or
    /// concurrent) just awaits `fut`.
    #[allow(dead_code)]
    pub(crate) async fn without_slot<F: Future>(&self, fut: F) -> F::Output {
        let job = self.job();
        let Some(queue) = job.header().queue.control() else {
            return fut.await;
        };
        if !queue.suspend(job) {
            return fut.await;
        }
        let output = fut.await;
        if !queue.resume(job) {
            std::future::poll_fn(|_| {
                // Woken through the task's waker, which the attempt's race registers.
                if job.header().phase() == Phase::Running {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        }
        output
    }
}
