//! Waits that hold no worker: [`TaskContext::wait_for_signal`] with
//! [`TaskRunner::signal`] / [`TaskRunner::signal_task`], [`TaskContext::sleep`] and
//! [`TaskContext::sleep_until`], and child runs with [`TaskContext::spawn`],
//! [`TaskContext::join`] and [`TaskContext::join_all`].
//!
//! In a durable run each wait is recorded in the store like a step, and a wait that must
//! really wait parks the run (`Waiting`: no slot, no `global_concurrency` place, no lease);
//! the run is claimed again, by any process that registered its name, once what it waits for
//! happens, and its handler runs again from the top with steps, consumed signals and spawned
//! children replayed. In an ordinary in-process task the same calls wait in memory, giving
//! back the task's slot while they wait.
//!
//! [`TaskRunner::signal`]: crate::TaskRunner::signal
//! [`TaskRunner::signal_task`]: crate::TaskRunner::signal_task

mod child;
mod error;
mod mailbox;
mod signal;
mod sleep;

use std::future::Future;

use crate::TaskContext;

pub use child::Joinable;
pub use error::SignalError;

/// Waits for `fut` holding no slot of the task's queue (the task is `Waiting` meanwhile, and
/// re-enters its queue at its priority when `fut` is done).
async fn without_slot<F: Future>(ctx: &TaskContext, fut: F) -> F::Output {
    ctx.without_slot(fut).await
}
