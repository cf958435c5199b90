//! The durable side of a handler's waits ([`TaskContext::wait_for_signal`], `sleep`, `spawn`,
//! `join`): each is recorded in the store like a step, fenced by the run's claim, so a run
//! resumed from the top gets the same signal, wake time and children back.
//!
//! A wait that must really wait parks the run in the store (in the same transaction that
//! found nothing to consume) and fires the scope's `park` token: the wrapper in
//! `registered.rs` drops the handler and the attempt ends with [`PARKED`], which the claim
//! loop treats as "nothing to write". The slot, the `global_concurrency` place and the lease
//! are given back; the run is claimed again once what it waits for happens.
//!
//! [`TaskContext::wait_for_signal`]: crate::TaskContext::wait_for_signal

use std::future::Future;
use std::time::Duration;

use super::registered::RunScope;
use super::step::StepCounts;
use crate::error::StepError;
use crate::store::{duration_ms, JoinStep, NewRun, Outcome, RunId, StoreError, WaitStep, Wake};
use crate::sync::lock_std;

/// What a parked attempt returns in place of an output (no JSON text holds a NUL).
pub(crate) const PARKED: &str = "\u{0}parked";

/// Tries a store operation this many times before the wait fails.
const TRIES: u32 = 3;

/// The index of the next wait of `key` in this attempt.
fn next(counts: &StepCounts, key: String) -> u32 {
    let mut counts = lock_std(counts);
    let count = counts.entry(key).or_insert(0);
    let index = *count;
    *count += 1;
    index
}

fn db_index(index: u32) -> i32 {
    i32::try_from(index).unwrap_or(i32::MAX)
}

/// The wait in progress in a run's attempt: given back when the wait ends or is dropped.
struct OneWait<'a>(&'a std::sync::Mutex<Option<String>>);

impl Drop for OneWait<'_> {
    fn drop(&mut self) {
        *lock_std(self.0) = None;
    }
}

/// Starts wait `what`, unless another wait of the run is in progress: a run parks for one
/// thing at a time, and a second wait would never be woken.
fn one_wait<'a>(scope: &'a RunScope, what: &str) -> Result<OneWait<'a>, StepError> {
    let mut waiting = lock_std(&scope.waiting);
    if let Some(other) = waiting.as_ref() {
        return Err(StepError::ConcurrentWait {
            wait: what.to_owned(),
            other: other.clone(),
        });
    }
    *waiting = Some(what.to_owned());
    Ok(OneWait(&scope.waiting))
}

/// Runs a store operation, retrying a failing store a few times.
async fn retrying<T, F, Fut>(what: &str, index: u32, mut f: F) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut tries = 0;
    loop {
        match f().await {
            Ok(value) => return Ok(value),
            Err(e) if tries + 1 < TRIES => {
                tries += 1;
                tracing::warn!(
                    wait = what,
                    "a wait's store operation failed (try {tries}): {e}"
                );
                tokio::time::sleep(Duration::from_millis(50) * tries).await;
            }
            Err(e) => {
                return Err(StepError::Store {
                    step: what.to_owned(),
                    index,
                    reason: e.to_string(),
                })
            }
        }
    }
}

/// The run is parked in the store: stop the attempt here.
async fn stop<T>(scope: &RunScope) -> T {
    scope.park.cancel();
    std::future::pending().await
}

/// This claim no longer holds the run (lease lost, or a cancel pending): the heartbeat stops
/// the attempt; nothing more is written from here.
async fn fenced<T>(scope: &RunScope, what: &str) -> T {
    tracing::debug!(run = %scope.id, wait = what, "the run's claim no longer holds: not waiting");
    std::future::pending().await
}

/// A claim already known lost in this process makes no store call. Before a wait that may
/// park the run, the attempt's charges and pauses are stored (a charge written after the
/// park would find the run no longer running and be dropped: the global budget's window
/// would keep the estimate), and its emits: its stream shows them before its `Waiting`.
async fn check_lease(scope: &RunScope, what: &str) {
    if scope.lease.is_lost() {
        fenced::<()>(scope, what).await;
    }
    scope.limits.flush().await;
    if let Err(e) = scope.emits.flush().await {
        tracing::warn!(run = %scope.id, wait = what, "the run's emits before a wait were not stored: {e}");
    }
}

async fn settle(scope: &RunScope, what: &str, step: WaitStep) -> Option<String> {
    match step {
        WaitStep::Ready(value) => value,
        WaitStep::Parked => stop(scope).await,
        WaitStep::Fenced => fenced(scope, what).await,
    }
}

/// The value (JSON) of the next signal `name`, or `None` at the deadline stored at the first
/// call.
pub(crate) async fn wait_signal(
    scope: &RunScope,
    name: &str,
    timeout: Duration,
) -> Result<(Option<String>, u32), StepError> {
    let what = format!("wait_for_signal(\"{name}\")");
    let _one = one_wait(scope, &what)?;
    let index = next(&scope.waits, format!("signal\0{name}"));
    let timeout = duration_ms(timeout);
    check_lease(scope, &what).await;
    let step = retrying(&what, index, || {
        scope
            .store
            .wait_signal(scope.id, scope.token, name, db_index(index), timeout)
    })
    .await?;
    Ok((settle(scope, &what, step).await, index))
}

/// Sleeps until the wake time stored at the first call.
pub(crate) async fn sleep(scope: &RunScope, wake: Wake) -> Result<(), StepError> {
    let _one = one_wait(scope, "sleep")?;
    let index = next(&scope.waits, "sleep".to_owned());
    check_lease(scope, "sleep").await;
    let step = retrying("sleep", index, || {
        scope
            .store
            .wait_sleep(scope.id, scope.token, db_index(index), wake)
    })
    .await?;
    settle(scope, "sleep", step).await;
    Ok(())
}

/// Submits `child` as a child of the run, once: a replay gets the same child's id.
pub(crate) async fn spawn(scope: &RunScope, child: NewRun) -> Result<RunId, StepError> {
    let index = next(&scope.waits, format!("spawn\0{}", child.name));
    let what = format!("spawn(\"{}\")", child.name);
    check_lease(scope, &what).await;
    let spawned = retrying(&what, index, || {
        scope
            .store
            .spawn_child(scope.id, scope.token, db_index(index), &child)
    })
    .await?;
    match spawned {
        Some(id) => {
            scope.durable.wake_queue(&child.queue);
            Ok(id)
        }
        None => fenced(scope, &what).await,
    }
}

/// The outcomes of `children`, once every one has ended.
pub(crate) async fn join(scope: &RunScope, children: &[RunId]) -> Result<Vec<Outcome>, StepError> {
    let _one = one_wait(scope, "join")?;
    check_lease(scope, "join").await;
    let step = retrying("join", 0, || {
        scope.store.join_children(scope.id, scope.token, children)
    })
    .await?;
    match step {
        JoinStep::Ready(outcomes) => Ok(outcomes),
        JoinStep::Parked => {
            // The join read its children's rows under a share lock (PostgreSQL): a claim of
            // a just-spawned child meanwhile skipped it (`SKIP LOCKED`) and took the spawn's
            // wake-up. Wake this process's claimers to look again.
            scope.durable.wake_all();
            stop(scope).await
        }
        JoinStep::Fenced => fenced(scope, "join").await,
    }
}

impl super::Durable {
    /// Tells of the runs a cascade cancel found under a run, at any depth: the handles here of
    /// waiting and pending ones (cancelled in the store), and running ones that run here
    /// (their intent stored).
    pub(super) fn cancelled_tree(&self, found: Vec<(RunId, crate::store::CancelFound)>) {
        use crate::store::CancelFound;
        let runner = super::upgrade(&self.runner);
        for (child, how) in found {
            match how {
                CancelFound::Cancelled => self.deliver(
                    child,
                    &Outcome {
                        status: "cancelled".into(),
                        output: None,
                        error: Some("cancelled".into()),
                        error_kind: Some("cancelled".into()),
                    },
                ),
                CancelFound::Requested => {
                    if let Some(runner) = &runner {
                        self.cancel_local(runner, child);
                    }
                }
                CancelFound::Nothing => {}
            }
        }
    }
}
