//! A claim's lease as the run's attempts see it: once a fenced write finds the lease lost,
//! the claim is over in this process. The attempt is stopped (cancelled, so the
//! definition's retry policy never runs the handler again) and nothing more is written for
//! it: another claim owns the run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use super::Durable;
use crate::store::RunId;
use crate::sync::lock_std;

/// Handed to every attempt of one claim (inside its [`RunScope`](super::registered::RunScope)).
#[derive(Clone)]
pub(crate) struct LeaseWatch {
    durable: Weak<Durable>,
    id: RunId,
    token: i64,
    lost: Arc<AtomicBool>,
}

impl std::fmt::Debug for LeaseWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseWatch")
            .field("id", &self.id)
            .field("token", &self.token)
            .field("lost", &self.is_lost())
            .finish()
    }
}

impl LeaseWatch {
    pub(super) fn new(durable: &Arc<Durable>, id: RunId, token: i64) -> LeaseWatch {
        LeaseWatch {
            durable: Arc::downgrade(durable),
            id,
            token,
            lost: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether a write of this claim was refused: the run belongs to another claim now.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    /// A fenced write was refused: ends the claim in this process (the running attempt is
    /// cancelled, so no retry follows, and its end is not written).
    pub(crate) fn lost(&self) {
        if self.lost.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(durable) = self.durable.upgrade() {
            durable.lease_lost(self.id, self.token);
        }
    }
}

impl Durable {
    /// The claim `(id, token)` is no longer this process's: stop its task and write nothing
    /// for it.
    pub(super) fn lease_lost(&self, id: RunId, token: i64) {
        let task = {
            let mut active = lock_std(&self.active);
            match active.get_mut(&id) {
                Some(a) if a.token == token && !a.quiet => {
                    a.quiet = true;
                    a.task
                }
                _ => None,
            }
        };
        tracing::warn!(run = %id, "lease lost: another claim holds the run; stopping it here");
        if let (Some(task), Some(runner)) = (task, super::upgrade(&self.runner)) {
            runner.cancel(task);
        }
    }
}
