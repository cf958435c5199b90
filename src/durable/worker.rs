//! The durable side's background work: the writer of runs' ends (batched, fenced), the
//! heartbeat (leases, stored cancels, rescue of dead processes' runs), retention, and on
//! PostgreSQL the `LISTEN` loop.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{upgrade, Done, Durable};
use crate::runner::Shared;
use crate::store::Outcome;
use crate::sync::lock_std;

/// The most ends one write stores.
const WRITE_BATCH: usize = 512;

/// Stores runs' ends, as many as are waiting in one transaction; each only while its claim's
/// token holds (a refused one means another claim owns the run now).
pub(super) async fn writer(
    weak: Weak<Shared>,
    durable: Arc<Durable>,
    mut rx: mpsc::UnboundedReceiver<Done>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    loop {
        tokio::select! {
            done = rx.recv() => match done {
                Some(done) => batch.push(done),
                None => return,
            },
            _ = tokio::time::sleep(durable.poll) => {
                if durable.stop.is_cancelled() || weak.strong_count() == 0 {
                    return;
                }
                continue;
            }
        }
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(done) => batch.push(done),
                Err(_) => break,
            }
        }
        let finishes: Vec<_> = batch.iter().map(|d| d.finish.clone()).collect();
        let mut tries = 0u32;
        let applied = loop {
            match durable.store.finish(&finishes).await {
                Ok(applied) => break applied,
                Err(e) => {
                    tries += 1;
                    tracing::warn!(
                        "storing {} runs' ends failed (try {tries}): {e}",
                        finishes.len()
                    );
                    if tries >= 30 || durable.stop.is_cancelled() {
                        // The leases expire and the runs are claimed again: at least once.
                        break vec![false; finishes.len()];
                    }
                    tokio::time::sleep(Duration::from_millis(100) * tries.min(20)).await;
                }
            }
        };
        for (done, applied) in batch.drain(..).zip(applied) {
            let finish = &done.finish;
            if applied {
                durable.deliver(
                    finish.id,
                    &Outcome {
                        status: finish.ending.status().to_owned(),
                        output: finish.output.clone(),
                        error: finish.error.clone(),
                        error_kind: finish.ending.kind().map(str::to_owned),
                    },
                );
            } else {
                tracing::warn!(
                    run = %finish.id,
                    "the run's end was not stored: its lease was lost and another claim holds it"
                );
            }
            let mut active = lock_std(&durable.active);
            if active
                .get(&finish.id)
                .is_some_and(|a| a.token == finish.token)
            {
                active.remove(&finish.id);
            }
            drop(active);
            durable.plans[done.plan].wake.notify_one();
        }
        if lock_std(&durable.active).is_empty() {
            durable.flushed.notify_waiters();
        }
    }
}

/// Renews this process's leases every third of a lease; cancels here the runs whose cancel
/// was stored, and stops those whose lease another process took; and puts back runs whose
/// process stopped renewing theirs.
pub(super) async fn heartbeat(weak: Weak<Shared>, durable: Arc<Durable>) {
    let every = (durable.lease / 3).max(Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = durable.stop.cancelled() => return,
        }
        let Some(runner) = upgrade(&weak) else {
            return;
        };
        let started = Instant::now();
        match durable.store.heartbeat(&durable.owner, durable.lease).await {
            Ok(held) => {
                let held: HashMap<_, _> = held.into_iter().map(|h| (h.id, h)).collect();
                let mut cancel = Vec::new();
                {
                    let mut active = lock_std(&durable.active);
                    for (id, a) in active.iter_mut() {
                        match held.get(id) {
                            Some(h)
                                if h.token == a.token && h.cancel_requested && !a.cancel_sent =>
                            {
                                a.cancel_sent = true;
                                cancel.extend(a.task);
                            }
                            Some(h) if h.token == a.token => {}
                            _ if a.claimed < started && !a.quiet => {
                                tracing::warn!(run = %id, "lease lost: stopping the run here");
                                a.quiet = true;
                                cancel.extend(a.task);
                            }
                            _ => {}
                        }
                    }
                }
                for task in cancel {
                    runner.cancel(task);
                }
            }
            Err(e) => tracing::warn!("renewing leases failed: {e}"),
        }
        drop(runner);
        match durable.store.rescue().await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!("{n} runs whose process stopped renewing their lease were put back");
                durable.wake_all();
            }
            Err(e) => tracing::warn!("rescuing runs of lost processes failed: {e}"),
        }
    }
}

/// Deletes finished runs past the retention, every `retention.every`.
pub(super) async fn prune(weak: Weak<Shared>, durable: Arc<Durable>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(durable.retention.every) => {}
            _ = durable.stop.cancelled() => return,
        }
        if weak.strong_count() == 0 {
            return;
        }
        match durable.store.prune(&durable.retention).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!("pruned {n} finished runs"),
            Err(e) => tracing::warn!("pruning finished runs failed: {e}"),
        }
    }
}

/// Wakes claim loops on `NOTIFY` of a new run, cancels on `NOTIFY` of a cancel. A lost
/// notification (while reconnecting) only delays: the claim loops poll too, and every
/// reconnect wakes them all.
#[cfg(feature = "postgres")]
pub(super) async fn listen(weak: Weak<Shared>, durable: Arc<Durable>) {
    use crate::store::{RunId, CANCEL_CHANNEL, RUNS_CHANNEL};
    let Some(pg) = durable.store.as_pg().cloned() else {
        return;
    };
    loop {
        let mut listener = tokio::select! {
            l = pg.listener() => match l {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("LISTEN failed, polling meanwhile: {e}");
                    tokio::select! {
                        _ = tokio::time::sleep(durable.poll) => continue,
                        _ = durable.stop.cancelled() => return,
                    }
                }
            },
            _ = durable.stop.cancelled() => return,
        };
        durable.wake_all();
        loop {
            let message = tokio::select! {
                m = listener.try_recv() => m,
                _ = durable.stop.cancelled() => return,
                _ = tokio::time::sleep(durable.poll * 5) => {
                    if weak.strong_count() == 0 { return; }
                    continue;
                }
            };
            match message {
                Ok(Some(n)) if n.channel() == RUNS_CHANNEL => durable.wake_queue(n.payload()),
                Ok(Some(n)) if n.channel() == CANCEL_CHANNEL => {
                    if let (Ok(id), Some(runner)) = (n.payload().parse::<RunId>(), upgrade(&weak)) {
                        durable.cancel_local(&runner, id);
                    }
                }
                Ok(Some(_)) => {}
                // The connection was lost and is back: anything may have been missed.
                Ok(None) => durable.wake_all(),
                Err(e) => {
                    tracing::warn!("LISTEN connection failed, reconnecting: {e}");
                    break;
                }
            }
        }
    }
}
