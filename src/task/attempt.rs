//! One attempt: the handler's future raced against its task's cancel and timeout, and what
//! it came to, classified into the task's next [`Transition`].

use std::cell::Cell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Sleep;

use super::cell::Job;
use super::header::Header;
use super::state::{Ending, Transition};
use super::tag::QueueTag;
use crate::panic::{contain, panic_message};

/// What one attempt came to.
#[derive(Debug)]
pub(crate) enum Attempt {
    Ok,
    Err {
        retry: bool,
        message: String,
        /// The wait the error asked for (`Task::retry_after`), if any.
        retry_after: Option<Duration>,
    },
    TimedOut,
    Panicked(String),
    /// The task's cancel was requested while the attempt ran; its future was dropped.
    Cancelled,
}

impl Attempt {
    /// What the task does next after attempt number `attempt` came to this: the one place an
    /// attempt's outcome is turned into a retry or an ending.
    pub(crate) fn classify(self, header: &Header, attempt: u32) -> Transition {
        let retry_delay = |retryable: bool| {
            let policy = header.retry().filter(|_| retryable)?;
            // Retries on a wait the error asked for (a 429) do not count.
            let counted = header.counted_attempts(attempt);
            (counted <= policy.retries()).then(|| policy.delay_for(counted))
        };
        let failed = |error: String, ending: Ending, delay: Option<Duration>| match delay {
            Some(delay) => Transition::Retry { error, delay },
            None => Transition::End {
                ending,
                error: Some(error),
            },
        };
        match self {
            Attempt::Ok => Transition::End {
                ending: Ending::Completed,
                error: None,
            },
            Attempt::Err {
                retry,
                message,
                retry_after,
            } => {
                let delay = retry_after
                    .filter(|_| header.take_retry_after())
                    .or_else(|| retry_delay(retry));
                failed(message, Ending::Failed, delay)
            }
            Attempt::TimedOut => {
                let message = match header.timeout() {
                    Some(timeout) => format!("timed out after {timeout:?}"),
                    None => "timed out".to_owned(),
                };
                failed(message, Ending::TimedOut, retry_delay(true))
            }
            Attempt::Panicked(message) => Transition::End {
                error: Some(format!("panicked: {message}")),
                ending: Ending::Panicked(message),
            },
            Attempt::Cancelled => Transition::End {
                ending: Ending::Cancelled,
                error: None,
            },
        }
    }
}

/// The tracing span every attempt runs in. With `tracing`'s `log` feature on (the `sqlite`
/// feature's `sqlx` turns it on) its fields are evaluated even when nobody listens.
pub(super) fn attempt_span(header: &Header, attempt: u32) -> tracing::Span {
    tracing::info_span!(
        "task",
        id = header.id.as_u64(),
        call_id = header.call_id(),
        name = header.name.as_str(),
        queue = header.queue.name(),
        attempt,
    )
}

/// Whether nobody can see `span`: no `tracing` subscriber wants it, and no `log` logger
/// takes info records (to which `tracing`'s `log` feature forwards spans).
pub(super) fn unobserved(span: &tracing::Span) -> bool {
    span.is_disabled() && log::max_level() < log::LevelFilter::Info
}

/// Whether an attempt's span could be seen at all: a `tracing` subscriber was ever set (global
/// or scoped), or a `log` logger takes info records. When neither, the span is not made:
/// making one evaluates and records its fields even then (about 180 instructions a task).
pub(super) fn span_possible() -> bool {
    tracing::dispatcher::has_been_set() || log::max_level() >= log::LevelFilter::Info
}

pin_project_lite::pin_project! {
    /// One attempt's future raced against the task's cancel and its timeout. The attempt's
    /// future is dropped in place when the race ends, inside the `catch_unwind` that wraps
    /// the race, so a handler whose future panics as it is dropped cannot take the worker
    /// down; the timer is made on the first poll, inside it too.
    ///
    /// The timers are boxed: a task with a timeout or a cancel grace pays an allocation for
    /// each, and every other task a race smaller by two timers, which is moved into its
    /// worker's block at each attempt.
    pub(super) struct Race<C, J> {
        #[pin]
        call: Option<C>,
        timeout: Option<Duration>,
        deadline: Option<Pin<Box<Sleep>>>,
        attempt: u32,
        // How the attempt ends, once a cancel or timeout came during a grace.
        ending: Option<Stopped>,
        // The task's cancel grace: how long the attempt may go on once its token fired.
        grace: Option<Duration>,
        grace_timer: Option<Pin<Box<Sleep>>>,
        job: Arc<J>,
    }
}

/// Why an attempt given a cancel grace is stopping.
#[derive(Clone, Copy)]
enum Stopped {
    Cancelled,
    TimedOut,
}

impl From<Stopped> for Attempt {
    fn from(stopped: Stopped) -> Self {
        match stopped {
            Stopped::Cancelled => Attempt::Cancelled,
            Stopped::TimedOut => Attempt::TimedOut,
        }
    }
}

impl<C, J: Job> Race<C, J> {
    /// Races `call`, attempt number `attempt` of `job`, against the task's cancel and timeout.
    pub(super) fn new(job: Arc<J>, call: C, attempt: u32) -> Self {
        let header = job.header();
        Race {
            call: Some(call),
            timeout: header.timeout(),
            deadline: None,
            attempt,
            grace: header.cancel_grace(),
            grace_timer: None,
            ending: None,
            job,
        }
    }
}

impl<C, J> Future for Race<C, J>
where
    C: Future<Output = Attempt>,
    J: Job,
{
    type Output = Attempt;

    /// Polls the race with panics caught: a panic of the handler's future ends the attempt
    /// `Panicked`, and the future is dropped at once (a panic in its `Drop` contained too).
    /// Caught here rather than by a `catch_unwind().map(..)` adapter, which would move the
    /// whole attempt's state out when it completes.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Attempt> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.as_mut().poll_race(cx))) {
            Ok(poll) => poll,
            Err(panic) => {
                drop_attempt(self.project().call);
                Poll::Ready(Attempt::Panicked(panic_message(panic)))
            }
        }
    }
}

impl<C, J> Race<C, J>
where
    C: Future<Output = Attempt>,
    J: Job,
{
    fn poll_race(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Attempt> {
        let mut this = self.project();
        let header = this.job.header();
        #[cfg(debug_assertions)]
        let _polling = own_queue::enter(&header.queue);
        header.waker.register(cx.waker());
        if this.ending.is_none() && header.cancel_requested() {
            // The cancel fired the task's token already.
            match *this.grace {
                None => {
                    drop_attempt(this.call);
                    return Poll::Ready(Attempt::Cancelled);
                }
                Some(grace) => {
                    *this.ending = Some(Stopped::Cancelled);
                    *this.grace_timer = Some(Box::pin(tokio::time::sleep(grace)));
                }
            }
        }
        if let Some(timeout) = this.timeout.take() {
            *this.deadline = Some(Box::pin(tokio::time::sleep(timeout)));
        }
        let Some(call) = this.call.as_mut().as_pin_mut() else {
            return Poll::Ready(Attempt::Cancelled);
        };
        if let Poll::Ready(attempt) = call.poll(cx) {
            this.call.set(None);
            // Within a grace, the handler stopped on its own: it ends as it was told to.
            return Poll::Ready(this.ending.take().map_or(attempt, Attempt::from));
        }
        if this.ending.is_none() {
            if let Some(deadline) = this.deadline {
                if deadline.as_mut().poll(cx).is_ready() {
                    match *this.grace {
                        None => {
                            drop_attempt(this.call);
                            return Poll::Ready(Attempt::TimedOut);
                        }
                        Some(grace) => {
                            *this.ending = Some(Stopped::TimedOut);
                            if let Some(token) = header.attempt_token(*this.attempt) {
                                token.cancel();
                            }
                            *this.grace_timer = Some(Box::pin(tokio::time::sleep(grace)));
                            // Let the handler see its token before the grace is counted.
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                    }
                }
            }
        }
        if let Some(timer) = this.grace_timer {
            if timer.as_mut().poll(cx).is_ready() {
                drop_attempt(this.call);
                let stopped = this.ending.take().unwrap_or(Stopped::Cancelled);
                return Poll::Ready(stopped.into());
            }
        }
        Poll::Pending
    }
}

/// Drops a cancelled or timed-out attempt's future. A panic in its `Drop` is logged, not
/// propagated: the attempt ends as cancelled or timed out all the same.
fn drop_attempt<C>(call: Pin<&mut Option<C>>) {
    let mut call = call;
    contain("a task's future panicked as it was dropped", || {
        call.set(None)
    });
}

/// Which queue's handler is being polled on this thread, for the debug-build check for the
/// own-queue deadlock (see [`TaskHandle`](crate::TaskHandle)).
#[cfg_attr(not(debug_assertions), allow(dead_code))]
pub(crate) mod own_queue {
    use super::{Cell, QueueTag};

    thread_local! {
        /// The address of the tag of the queue whose handler is being polled here, or 0.
        static CURRENT: Cell<usize> = const { Cell::new(0) };
    }

    /// Marks this thread as polling a handler of `queue` until dropped.
    pub(crate) struct Polling(usize);

    pub(crate) fn enter(queue: &QueueTag) -> Polling {
        Polling(CURRENT.replace(std::ptr::from_ref(queue) as usize))
    }

    impl Drop for Polling {
        fn drop(&mut self) {
            CURRENT.set(self.0);
        }
    }

    /// Whether a handler of `queue` is being polled on this thread.
    pub(crate) fn is_polling(queue: &QueueTag) -> bool {
        let current = CURRENT.get();
        current != 0 && current == std::ptr::from_ref(queue) as usize
    }
}
