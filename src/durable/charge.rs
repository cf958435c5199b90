//! The durable side of [`TaskContext::charge`](crate::TaskContext::charge) and
//! [`TaskContext::pause_queue_for`](crate::TaskContext::pause_queue_for): one
//! [`AttemptLimits`] an attempt of a run, whose writes go to the store in the background
//! (the handler does not wait) and are all stored before the attempt's end is.
//!
//! A charge replaces the attempt's row in its queue's global budget window (the estimate
//! its claim reserved, or an earlier charge) and adds the difference to the run's
//! `charged`; charges made faster than the store takes them are coalesced, the last one
//! wins. A pause stores the queue's pause end, read by every process's claim.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::LeaseWatch;
use crate::store::{Charge, RunId, Store};
use crate::sync::lock_std;

/// One attempt's writes for its queue's global limits (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct AttemptLimits(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    store: Store,
    lease: LeaseWatch,
    run: RunId,
    token: i64,
    attempt: i32,
    queue: String,
    /// Whether the queue has a global budget (the charge goes into its window).
    budgeted: bool,
    state: Mutex<State>,
    /// Serializes the charge writes (each writes the latest charge).
    writing: tokio::sync::Mutex<()>,
    /// The writes not yet awaited.
    pending: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug)]
struct State {
    /// The latest charge, not yet written.
    wanted: Option<i64>,
    /// What the store holds for this attempt: its reservation, then its last charge.
    stored: i64,
}

/// What an attempt's [`AttemptLimits`] is made from.
pub(crate) struct AttemptOf<'a> {
    pub(crate) store: &'a Store,
    pub(crate) lease: &'a LeaseWatch,
    pub(crate) run: RunId,
    pub(crate) token: i64,
    pub(crate) attempt: i32,
    pub(crate) queue: &'a str,
    pub(crate) budgeted: bool,
    /// The units its claim reserved for it (0 past the claim's first attempt).
    pub(crate) reserved: i64,
}

impl AttemptLimits {
    pub(crate) fn new(of: AttemptOf<'_>) -> Self {
        AttemptLimits(Arc::new(Inner {
            store: of.store.clone(),
            lease: of.lease.clone(),
            run: of.run,
            token: of.token,
            attempt: of.attempt,
            queue: of.queue.to_owned(),
            budgeted: of.budgeted,
            state: Mutex::new(State {
                wanted: None,
                stored: of.reserved,
            }),
            writing: tokio::sync::Mutex::new(()),
            pending: Mutex::new(Vec::new()),
        }))
    }

    /// The attempt cost `units` in all: stored in the background.
    pub(crate) fn charge(&self, units: u64) {
        let units = i64::try_from(units).unwrap_or(i64::MAX);
        lock_std(&self.0.state).wanted = Some(units);
        let inner = Arc::clone(&self.0);
        self.spawn(async move {
            let _writing = inner.writing.lock().await;
            let (units, stored) = {
                let mut state = lock_std(&inner.state);
                match state.wanted.take() {
                    Some(units) if units != state.stored => (units, state.stored),
                    _ => return, // written by an earlier write, or nothing changed
                }
            };
            let charge = Charge {
                run: inner.run,
                token: inner.token,
                attempt: inner.attempt,
                queue: inner.queue.clone(),
                units,
                delta: units.saturating_sub(stored),
                budgeted: inner.budgeted,
            };
            match inner.store.charge(&charge).await {
                Ok(true) => lock_std(&inner.state).stored = units,
                Ok(false) => inner.lease.lost(),
                Err(e) => tracing::warn!(run = %inner.run, "a charge of {units} units was not stored: {e}"),
            }
        });
    }

    /// Pauses the attempt's queue in every process for `duration` from now (the store's
    /// clock): stored in the background.
    pub(crate) fn pause_queue_for(&self, duration: Duration) {
        let inner = Arc::clone(&self.0);
        // At most a century: the store adds it to its clock, and a sum past i64 would fail.
        const CENTURY_MS: u128 = 100 * 365 * 86_400_000;
        let ms = duration.as_millis().min(CENTURY_MS) as i64;
        self.spawn(async move {
            if let Err(e) = inner.store.pause_queue(&inner.queue, ms).await {
                tracing::warn!(queue = %inner.queue, "the queue's pause was not stored: {e}");
            }
        });
    }

    /// Waits until every charge and pause made so far is stored (or failed).
    pub(crate) async fn flush(&self) {
        loop {
            let pending = std::mem::take(&mut *lock_std(&self.0.pending));
            if pending.is_empty() {
                return;
            }
            for write in pending {
                let _ = write.await;
            }
        }
    }

    fn spawn(&self, write: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut pending = lock_std(&self.0.pending);
        pending.retain(|w| !w.is_finished());
        pending.push(tokio::spawn(write));
    }
}

/// The limits of a claim's latest attempt: an attempt that timed out or panicked is dropped
/// before it could flush its own writes, so the claim flushes them before its end is stored
/// (a charge that reached the store after the end would be refused: the run is no longer
/// running, and the units it spent would be missing from its `charged` and the budget).
#[derive(Debug, Clone, Default)]
pub(crate) struct LatestLimits(Arc<Mutex<Option<AttemptLimits>>>);

impl LatestLimits {
    /// `limits` are now the claim's latest attempt's.
    pub(crate) fn set(&self, limits: &AttemptLimits) {
        *lock_std(&self.0) = Some(limits.clone());
    }

    /// Waits until every write of the latest attempt is stored (or failed).
    pub(crate) async fn flush(&self) {
        let latest = lock_std(&self.0).clone();
        if let Some(limits) = latest {
            limits.flush().await;
        }
    }
}

impl crate::task::DurableLimits for AttemptLimits {
    fn charge(&self, units: u64) {
        AttemptLimits::charge(self, units);
    }

    fn pause_queue_for(&self, duration: Duration) {
        AttemptLimits::pause_queue_for(self, duration);
    }
}
