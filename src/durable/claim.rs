//! The claim loop of one queue: claims runs of the names this process registered, in claim
//! order, as many as the queue has free slots, and starts each as a task of the runner.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{upgrade, Active, Done, Durable, CLAIM_BATCH};
use crate::runner::Shared;
use crate::store::{Claimed, Ending, Finish};
use crate::sync::lock_std;
use crate::{TaskError, TaskRunner};

pub(super) async fn claim_loop(weak: Weak<Shared>, durable: Arc<Durable>, index: usize) {
    let plan = &durable.plans[index];
    let mut failures: u32 = 0;
    loop {
        if durable.claiming.is_cancelled() {
            return;
        }
        let Some(runner) = upgrade(&weak) else {
            return;
        };
        // Claim when a slot would otherwise idle, or when half the window is free: runs
        // claimed ahead are topped up in batches, not one per finished run.
        let free = runner.queue_stats(&plan.queue).map_or(0, |s| {
            let ahead = match durable.claim_ahead {
                Some(n) => n,
                None if plan.global.any() => 0,
                None => plan.times.ahead(s.limit),
            };
            let window = s.limit + ahead;
            let in_flight = s.running + s.pending;
            let free = window.saturating_sub(in_flight);
            let idle_slot = s.running < s.limit && s.pending == 0;
            if idle_slot || free * 2 >= window {
                free
            } else {
                0
            }
        });
        let mut full = false;
        let mut wait = durable.poll;
        if free > 0 && !runner.is_shutting_down() {
            let max = free.min(CLAIM_BATCH);
            let gate = durable.claim_gate.read().await;
            match durable
                .store
                .claim(
                    &plan.queue,
                    &plan.names,
                    max,
                    &durable.owner,
                    durable.lease,
                    plan.global,
                )
                .await
            {
                Ok(runs) => {
                    failures = 0;
                    full = runs.len() == max;
                    for run in runs {
                        durable.start_run(&runner, index, run);
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(queue = %plan.queue, "claiming runs failed: {e}");
                    wait = wait.min(Duration::from_millis(50) * failures.min(20));
                }
            }
            drop(gate);
            if !full && failures == 0 {
                if let Ok(Some(due)) = durable.store.next_due(&plan.queue, &plan.names).await {
                    wait = wait.min(Duration::from_millis(due.max(1) as u64));
                }
                // Held back by the global rate limit (or nothing due): claim again one
                // average gap later, not at once.
                if let Some(gap) = plan.global.rate_gap() {
                    wait = wait.max(gap.min(durable.poll));
                }
            }
        }
        drop(runner);
        if full {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = plan.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = durable.claiming.cancelled() => return,
        }
    }
}

impl Durable {
    /// Runs a claimed run as a task of `runner`; its end goes to the writer.
    fn start_run(self: &Arc<Self>, runner: &TaskRunner, plan: usize, run: Claimed) {
        let Some(def) = self.defs.get(&run.name) else {
            return; // unreachable: claims name only registered definitions
        };
        lock_std(&self.active).insert(
            run.id,
            Active {
                token: run.token,
                task: None,
                claimed: Instant::now(),
                started: None,
                ahead: self.claim_ahead.is_none() && !self.plans[plan].global.any(),
                plan,
                quiet: false,
                cancel_sent: false,
                ending: false,
            },
        );
        let recoveries = u32::try_from(run.recoveries).unwrap_or(0);
        let lost_too_often = (recoveries > def.max_recoveries()).then(|| {
            format!(
                "worker lost {recoveries} times: the process running it died or stopped renewing \
                 its lease each time (max_recoveries is {}); if the run itself kills its \
                 process, fix that, or raise `TaskDef::max_recoveries`",
                def.max_recoveries()
            )
        });
        if let Some(message) = lost_too_often.or_else(|| def.check_input(&run.input).err()) {
            tracing::warn!(run = %run.id, name = %run.name, "{message}");
            self.send_done(
                plan,
                Finish {
                    id: run.id,
                    token: run.token,
                    ending: Ending::Failed,
                    output: None,
                    error: Some(message),
                },
            );
            return;
        }
        let lease = super::LeaseWatch::new(self, run.id, run.token);
        let latest = super::charge::LatestLimits::default();
        match def.enqueue(runner, &run, self, lease, &latest) {
            Ok(handle) => {
                let task = handle.id();
                let lost = match lock_std(&self.active).get_mut(&run.id) {
                    Some(a) => {
                        a.task = Some(task);
                        a.quiet
                    }
                    None => false,
                };
                if lost {
                    // Its lease was found lost before its task was known here.
                    runner.cancel(task);
                }
                let durable = Arc::clone(self);
                tokio::spawn(async move {
                    let result = handle.await;
                    // Charges of an attempt that timed out or panicked are still in
                    // flight: stored before the end, or the ended run would refuse them.
                    latest.flush().await;
                    durable.task_ended(plan, run.id, run.token, result);
                });
            }
            Err(e) => {
                // Shutting down: hand it back at once.
                tracing::debug!(run = %run.id, "released unstarted run: {e}");
                if let Some(a) = lock_std(&self.active).get_mut(&run.id) {
                    a.quiet = true;
                }
                let durable = Arc::clone(self);
                tokio::spawn(async move {
                    if let Err(e) = durable.store.release(&[(run.id, run.token)]).await {
                        tracing::warn!(run = %run.id, "could not release a run: {e}");
                    }
                    lock_std(&durable.active).remove(&run.id);
                    durable.flushed.notify_waiters();
                });
            }
        }
    }

    fn task_ended(
        &self,
        plan: usize,
        id: crate::store::RunId,
        token: i64,
        result: Result<String, TaskError<String>>,
    ) {
        // Parked by a wait (written to the store by the wait itself), released to the store,
        // or the lease was lost: nothing to write.
        let parked = matches!(&result, Ok(json) if json == super::wait::PARKED);
        let (quiet, started) = {
            let mut active = lock_std(&self.active);
            let a = active.get_mut(&id);
            let quiet = parked || a.as_ref().is_none_or(|a| a.quiet);
            let mine = a.filter(|a| a.token == token);
            let started = mine.as_ref().and_then(|a| a.started);
            if let Some(a) = mine.filter(|_| !quiet) {
                // Its end is on its way: the heartbeat must not hand it back meanwhile.
                a.ending = true;
            }
            (quiet, started)
        };
        if let Some(started) = started {
            self.plans[plan].times.record(started.elapsed());
        }
        if quiet {
            let mut active = lock_std(&self.active);
            if active.get(&id).is_some_and(|a| a.token == token) {
                active.remove(&id);
            }
            let empty = active.is_empty();
            drop(active);
            if empty {
                self.flushed.notify_waiters();
            }
            self.plans[plan].wake.notify_one();
            return;
        }
        let (ending, output, error) = match result {
            Ok(json) => (Ending::Completed, Some(json), None),
            Err(TaskError::Failed(message)) => (Ending::Failed, None, Some(message)),
            Err(TaskError::TimedOut) => (Ending::TimedOut, None, Some("timed out".to_owned())),
            Err(TaskError::Panicked(message)) => {
                (Ending::Panicked, None, Some(format!("panicked: {message}")))
            }
            Err(TaskError::Cancelled | TaskError::Shutdown) => {
                (Ending::Cancelled, None, Some("cancelled".to_owned()))
            }
            // A handle never resolves this (only `run` makes it, before a task exists).
            Err(TaskError::Rejected(refused)) => (Ending::Failed, None, Some(refused.to_string())),
        };
        self.send_done(
            plan,
            Finish {
                id,
                token,
                ending,
                output,
                error,
            },
        );
    }

    fn send_done(&self, plan: usize, finish: Finish) {
        if let Some(a) = lock_std(&self.active).get_mut(&finish.id) {
            if a.token == finish.token {
                a.ending = true;
            }
        }
        // The writer lives as long as the durable side; if it is gone, the lease expires and
        // another claim runs the run again.
        let _ = self.done_tx.send(Done { finish, plan });
    }
}
