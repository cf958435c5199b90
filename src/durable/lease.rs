//! A claim's lease as the run's attempts see it: once a fenced write finds the lease lost,
//! the claim is over in this process. The attempt is stopped (cancelled, so the
//! definition's retry policy never runs the handler again) and nothing more is written for
//! it: another claim owns the run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use std::collections::HashMap;
use std::time::Instant;

use super::{Active, Durable};
use crate::store::{Held, RunId};
use crate::sync::lock_std;
use crate::TaskId;

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

/// What a heartbeat's renewals (`renewed`, by run) mean for the runs in `active`, whose
/// claims were sent at `started`: the tasks to cancel here (a stored cancel seen, or the
/// lease lost: renewed by no one since another claim holds the run). A run claimed since,
/// handed back, or whose end went to the writer (no longer `running`, not yet cleared) is
/// not lost.
pub(super) fn after_renewal(
    active: &mut HashMap<RunId, Active>,
    renewed: &HashMap<RunId, Held>,
    started: Instant,
) -> Vec<TaskId> {
    let mut cancel = Vec::new();
    for (id, a) in active.iter_mut() {
        match renewed.get(id).filter(|h| h.token == a.token) {
            Some(h) if h.cancel_requested && !a.cancel_sent => {
                a.cancel_sent = true;
                cancel.extend(a.task);
            }
            Some(_) => {}
            _ if a.claimed >= started || a.quiet || a.ending => {}
            _ => {
                tracing::warn!(run = %id, "lease lost: stopping the run here");
                a.quiet = true;
                cancel.extend(a.task);
            }
        }
    }
    cancel
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(token: i64, claimed: Instant, ending: bool) -> Active {
        Active {
            token,
            task: None,
            claimed,
            started: None,
            ahead: false,
            plan: 0,
            quiet: false,
            cancel_sent: false,
            ending,
        }
    }

    /// A run whose end was just stored (so the heartbeat did not renew it) but not yet
    /// cleared from `active` is not reported lost; one renewed by no one is.
    #[test]
    fn an_ended_run_is_not_a_lost_lease() {
        let before = Instant::now();
        let started = before + std::time::Duration::from_millis(1);
        let (ended, lost, held) = (RunId::from_i64(1), RunId::from_i64(2), RunId::from_i64(3));
        let mut runs = HashMap::from([
            (ended, active(7, before, true)),
            (lost, active(7, before, false)),
            (held, active(7, before, false)),
        ]);
        let renewed = HashMap::from([(
            held,
            Held {
                id: held,
                token: 7,
                cancel_requested: false,
            },
        )]);
        after_renewal(&mut runs, &renewed, started);
        assert!(
            !runs[&ended].quiet,
            "a run whose end was stored was called lost"
        );
        assert!(runs[&lost].quiet);
        assert!(!runs[&held].quiet);
    }
}
