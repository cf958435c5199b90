//! [`TaskCell`]: the one allocation behind a task, and the type-erased views of it that
//! queues, workers, the registry ([`Job`]) and handles ([`TypedJob`]) share.
//!
//! A cell holds the non-generic [`Header`] (identity, options, state machine, status
//! record), the handler, and the slot its typed result waits in for the
//! [`TaskHandle`](crate::TaskHandle).

use std::any::Any;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tracing::Instrument;

use super::attempt::{attempt_span, span_possible, unobserved, Attempt, Race};
use super::block::AttemptBlock;
use super::context::TaskContext;
use super::header::Header;
use super::options::RetryPredicate;
use super::state::{Ending, Finished};
use crate::error::TaskError;
use crate::panic::contain;
use crate::sync::lock_std;

/// A task as queues, workers and the registry see it.
pub(crate) trait Job: Send + Sync + 'static {
    fn header(&self) -> &Header;
    /// Places attempt number `attempt` (1-based) in `block`, to be polled there: inside its
    /// tracing span, raced against the task's cancel and timeout, panics caught. Stages the
    /// handler's typed result.
    fn run(self: Arc<Self>, attempt: u32, block: &mut AttemptBlock);
    /// Delivers the final result to the handle, deposits the task's notification and drops
    /// the handler. Takes the [`Finished`] proof that the task reached its terminal phase,
    /// which exists once per task.
    fn publish(&self, finished: Finished);
}

/// A task as its [`TaskHandle`](crate::TaskHandle) sees it.
pub(crate) trait TypedJob<T, E>: Job {
    fn poll_result(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError<E>>>;
    /// The handle is gone: drop the result instead of keeping it.
    fn detach(&self);
}

// ===== TaskCell =====

/// The one allocation behind a task.
pub(crate) struct TaskCell<F, P, T, E> {
    pub(crate) header: Header,
    /// The handler and the result's slot, under one lock (two cost a queued task 24 bytes
    /// more). Each use is short, and no user code runs under it but the retry predicate.
    inner: std::sync::Mutex<Inner<F, P, T, E>>,
}

struct Inner<F, P, T, E> {
    /// The handler and the retry predicate, dropped when the task ends (in `publish`, where
    /// a panic in their `Drop` is contained), so a finished record holds nothing they
    /// captured. Together: a predicate is nearly always zero-sized, and then costs nothing.
    handler: Option<(F, P)>,
    slot: SlotState<T, E>,
}

/// The result's slot. The last attempt's result is staged in it until the task ends: beside
/// the handle's waker, not in a field of its own, which would cost every queued task its
/// size.
enum SlotState<T, E> {
    Waiting {
        waker: Option<Waker>,
        staged: Option<Result<T, E>>,
    },
    Ready(Result<T, TaskError<E>>),
    Taken,
    /// The handle is gone; a result staged is dropped when the task ends.
    Detached {
        staged: Option<Result<T, E>>,
    },
}

impl<T, E> SlotState<T, E> {
    /// Stages `result`, the last attempt's; nothing to stage in once the task has ended.
    fn stage(&mut self, result: Result<T, E>) {
        match self {
            SlotState::Waiting { staged, .. } | SlotState::Detached { staged } => {
                *staged = Some(result);
            }
            SlotState::Ready(_) | SlotState::Taken => {
                debug_assert!(false, "a result was staged after the task ended");
            }
        }
    }

    fn take_staged(&mut self) -> Option<Result<T, E>> {
        match self {
            SlotState::Waiting { staged, .. } | SlotState::Detached { staged } => staged.take(),
            SlotState::Ready(_) | SlotState::Taken => None,
        }
    }
}

impl<F, P, T, E> TaskCell<F, P, T, E> {
    #[inline(always)]
    pub(crate) fn new(header: Header, handler: F, retry_if: P) -> Self {
        TaskCell {
            header,
            inner: std::sync::Mutex::new(Inner {
                handler: Some((handler, retry_if)),
                slot: SlotState::Waiting {
                    waker: None,
                    staged: None,
                },
            }),
        }
    }
}

impl<F, Fut, P, T, E> TaskCell<F, P, T, E>
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    P: RetryPredicate<E>,
    T: Send + 'static,
    E: Display + Send + 'static,
{
    /// Deposits the task's notification, if it asked for one (or the runner asks for all).
    fn notify(&self, result: &Result<T, TaskError<E>>) {
        let header = &self.header;
        let observers = header.queue.observers();
        let summarizer = header.options().and_then(|o| o.notify.as_ref());
        if summarizer.is_none() && !observers.notify_all {
            return;
        }
        let text = match result {
            Ok(value) => match summarizer {
                Some(summarize) => {
                    std::panic::catch_unwind(AssertUnwindSafe(|| summarize(value as &dyn Any)))
                        .unwrap_or_else(|_| "(the task's summary panicked)".to_owned())
                }
                None => "completed".to_owned(),
            },
            Err(error) => header.last_error().unwrap_or_else(|| error.to_string()),
        };
        observers.inbox.deposit(
            header.id,
            header.call_id(),
            &header.name,
            header.queue.name(),
            header.phase().status(),
            text,
        );
    }

    /// Calls the handler and awaits it, staging its result.
    async fn call(self: Arc<Self>, attempt: u32) -> Attempt {
        let ctx = TaskContext::new(self.clone(), attempt);
        // The handler is called outside its mutex: taken out, called, put back. Only the
        // worker running this attempt touches it meanwhile (a task's handler is dropped in
        // `publish`, after its last attempt ended). The guard puts it back even if the call
        // panics, so that it is dropped in `publish`, where a panic in its `Drop` is
        // contained, never during the unwinding (a second panic would abort).
        let Some(handler) = lock_std(&self.inner).handler.take() else {
            // Only a finished task has no handler, and a finished task is never run.
            return Attempt::Cancelled;
        };
        let borrowed = PutBack {
            cell: &self.inner,
            handler: Some(handler),
        };
        let future = match &borrowed.handler {
            Some((handler, _)) => handler(ctx),
            None => unreachable!("the guard holds the handler until it is dropped"),
        };
        drop(borrowed);
        match future.await {
            Ok(value) => {
                lock_std(&self.inner).slot.stage(Ok(value));
                Attempt::Ok
            }
            Err(error) => {
                let retry = lock_std(&self.inner)
                    .handler
                    .as_ref()
                    .is_some_and(|(_, retry_if)| retry_if.should_retry(&error));
                let message = error.to_string();
                let retry_after = self
                    .header
                    .options()
                    .map(|o| &o.flow)
                    .and_then(|f| f.retry_after.as_ref())
                    .and_then(|asks| asks(&error as &dyn Any));
                lock_std(&self.inner).slot.stage(Err(error));
                Attempt::Err {
                    retry,
                    message,
                    retry_after,
                }
            }
        }
    }
}

/// Puts a handler taken out of its mutex back when dropped, unwinding included.
struct PutBack<'a, F, P, T, E> {
    cell: &'a std::sync::Mutex<Inner<F, P, T, E>>,
    handler: Option<(F, P)>,
}

impl<F, P, T, E> Drop for PutBack<'_, F, P, T, E> {
    fn drop(&mut self) {
        lock_std(self.cell).handler = self.handler.take();
    }
}

impl<F, Fut, P, T, E> Job for TaskCell<F, P, T, E>
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    P: RetryPredicate<E>,
    T: Send + 'static,
    E: Display + Send + 'static,
{
    fn header(&self) -> &Header {
        &self.header
    }

    fn run(self: Arc<Self>, attempt: u32, block: &mut AttemptBlock) {
        if !span_possible() {
            let call = Arc::clone(&self).call(attempt);
            block.place(Race::new(self, call, attempt));
            return;
        }
        let span = attempt_span(&self.header, attempt);
        let call = Arc::clone(&self).call(attempt);
        let race = Race::new(self, call, attempt);
        if unobserved(&span) {
            // Entering and leaving a span nobody sees still costs (`tracing`'s `log`
            // feature checks for a logger each time): skip it.
            block.place(race);
        } else {
            block.place(race.instrument(span));
        }
    }

    fn publish(&self, finished: Finished) {
        // The handler and its captures go now, outside any lock; a panic in their `Drop` is
        // contained, so that the handle still resolves and the worker goes on.
        let (handler, mut staged) = {
            let mut inner = lock_std(&self.inner);
            (inner.handler.take(), inner.slot.take_staged())
        };
        contain("the task's handler panicked as it was dropped", || {
            drop(handler)
        });
        let result = match finished.into_ending() {
            Ending::Completed | Ending::Failed => match staged.take() {
                Some(Ok(value)) => Ok(value),
                Some(Err(error)) => Err(TaskError::Failed(error)),
                None => {
                    debug_assert!(false, "a task ended Completed/Failed with nothing staged");
                    Err(TaskError::Cancelled)
                }
            },
            Ending::TimedOut => Err(TaskError::TimedOut),
            Ending::Panicked(message) => Err(TaskError::Panicked(message)),
            Ending::Cancelled => Err(TaskError::Cancelled),
            Ending::Shutdown => Err(TaskError::Shutdown),
        };
        // A value the last attempt returned within a cancel grace, not delivered.
        contain("the task's result panicked as it was dropped", || {
            drop(staged)
        });
        // User code (a summary) may run here: no lock is held.
        contain("the task's notification panicked", || self.notify(&result));
        let mut inner = lock_std(&self.inner);
        let waker = match &mut inner.slot {
            SlotState::Waiting { waker, .. } => {
                let waker = waker.take();
                inner.slot = SlotState::Ready(result);
                waker
            }
            // Nobody will read it; drop it (after unlocking).
            SlotState::Detached { .. } => {
                drop(inner);
                contain("the task's result panicked as it was dropped", || {
                    drop(result)
                });
                return;
            }
            SlotState::Ready(_) | SlotState::Taken => {
                debug_assert!(false, "a task's result was published twice");
                None
            }
        };
        drop(inner);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<F, Fut, P, T, E> TypedJob<T, E> for TaskCell<F, P, T, E>
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    P: RetryPredicate<E>,
    T: Send + 'static,
    E: Display + Send + 'static,
{
    fn poll_result(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError<E>>> {
        let mut inner = lock_std(&self.inner);
        match &mut inner.slot {
            SlotState::Waiting { waker, .. } => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            SlotState::Ready(_) => match std::mem::replace(&mut inner.slot, SlotState::Taken) {
                SlotState::Ready(result) => Poll::Ready(result),
                _ => unreachable!("matched Ready above"),
            },
            SlotState::Taken | SlotState::Detached { .. } => {
                panic!("a TaskHandle was polled after it resolved")
            }
        }
    }

    fn detach(&self) {
        let mut inner = lock_std(&self.inner);
        // A result staged already stays, to be dropped when the task ends (contained).
        let staged = inner.slot.take_staged();
        let old = std::mem::replace(&mut inner.slot, SlotState::Detached { staged });
        drop(inner);
        drop(old);
    }
}
