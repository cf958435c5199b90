//! The durable side's background work: the writer of runs' ends (batched, fenced), the
//! heartbeat (leases, stored cancels, rescue of dead processes' runs), retention, and on
//! PostgreSQL the `LISTEN` loop.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::lease::after_renewal;
use super::{upgrade, Done, Durable};
use crate::runner::Shared;
use crate::store::{Ending, Finish, Outcome, StoreError};
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
        let stored = store_ends(&durable, finishes).await;
        wake_joiners(&durable, &stored).await;
        for (done, (finish, stored)) in batch.drain(..).zip(stored) {
            match stored {
                Some(true) => durable.deliver(
                    finish.id,
                    &Outcome {
                        status: finish.ending.status().to_owned(),
                        output: finish.output.clone(),
                        error: finish.error.clone(),
                        error_kind: finish.ending.kind().map(str::to_owned),
                    },
                ),
                Some(false) => tracing::warn!(
                    run = %finish.id,
                    "the run's end was not stored: its lease was lost and another claim holds it"
                ),
                None => tracing::warn!(
                    run = %finish.id,
                    "the run's end could not be stored (the store kept failing): it is handed \
                     back at the next heartbeat, or claimed again once its lease expires"
                ),
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

/// Wakes the claimers here of the runs that were joining the runs just ended and are due now
/// (on another queue, too), instead of at their next poll.
async fn wake_joiners(durable: &Durable, stored: &[(Finish, Option<bool>)]) {
    let ended: Vec<_> = stored
        .iter()
        .filter(|(_, stored)| *stored == Some(true))
        .map(|(finish, _)| finish.id)
        .collect();
    match durable.store.joiners_due(&ended).await {
        Ok(queues) => queues.iter().for_each(|q| durable.wake_queue(q)),
        Err(e) => tracing::debug!("finding the runs joining ended runs failed: {e}"),
    }
}

/// Stores `finishes` (each `Some(applied)`, or `None` if the store kept failing). A batch
/// that fails is stored one end at a time, so that one bad row never holds back the others;
/// an end that fails on its own twice while the store answers is replaced by a plain
/// failure saying why, so the run still ends. A store that is down is retried with a backoff (about
/// 40 s in all).
async fn store_ends(durable: &Durable, finishes: Vec<Finish>) -> Vec<(Finish, Option<bool>)> {
    let mut finishes: Vec<Finish> = finishes.iter().map(Finish::cleaned).collect();
    let mut stored: Vec<Option<bool>> = vec![None; finishes.len()];
    // Rounds in which an end failed while the store answered; at two it is the row's fault.
    let mut refused = vec![0u8; finishes.len()];
    let mut replaced = vec![false; finishes.len()];
    let mut gave_up = vec![false; finishes.len()];
    let mut tries = 0u32;
    loop {
        let left: Vec<usize> = (0..finishes.len())
            .filter(|&i| stored[i].is_none() && !gave_up[i])
            .collect();
        if left.is_empty() {
            break;
        }
        let batch: Vec<Finish> = left.iter().map(|&i| finishes[i].clone()).collect();
        let error = match durable.store.finish(&batch).await {
            Ok(applied) => {
                for (&i, applied) in left.iter().zip(applied) {
                    stored[i] = Some(applied);
                }
                break;
            }
            Err(e) => e,
        };
        tries += 1;
        tracing::warn!(
            "storing {} runs' ends failed (try {tries}): {error}",
            left.len()
        );
        // A store that does not answer at all, or cannot take a write now (a full disk), is
        // down: wait for it, rather than try every end alone.
        let store_answers =
            durable.store.ping().await.is_ok() && !matches!(error, StoreError::Unavailable(_));
        let mut failed = Vec::new();
        if store_answers && left.len() > 1 {
            for &i in &left {
                match durable
                    .store
                    .finish(std::slice::from_ref(&finishes[i]))
                    .await
                {
                    Ok(applied) => stored[i] = applied.first().copied(),
                    Err(e) => failed.push((i, e)),
                }
            }
        }
        if left.len() == 1 {
            failed.push((left[0], error));
        }
        // A full disk, an I/O error or a lost connection is the store's state, never the
        // row's: such an end is kept as it is and tried again (stored as a failure instead,
        // a completed run's answer was lost for a moment without room).
        failed.retain(|(_, e)| !matches!(e, StoreError::Unavailable(_)));
        if store_answers {
            // The store is up: these rows fail on their own. End each as a plain failure.
            for (i, e) in failed {
                refused[i] += 1;
                if refused[i] < 2 {
                    continue;
                }
                if !replaced[i] {
                    refused[i] = 0;
                    replaced[i] = true;
                    let f = &mut finishes[i];
                    tracing::warn!(run = %f.id, "the run's end was refused by the store, storing a failure instead: {e}");
                    f.error = Some(format!(
                        "the run ended `{}` but the store refused that end: {e}",
                        f.ending.status()
                    ));
                    f.ending = Ending::Failed;
                    f.output = None;
                } else {
                    gave_up[i] = true; // refused even as a plain failure
                }
            }
        }
        if tries >= 30 || durable.stop.is_cancelled() {
            break;
        }
        let backoff = if store_answers { 1 } else { tries.min(20) };
        tokio::time::sleep(Duration::from_millis(100) * backoff).await;
    }
    finishes.into_iter().zip(stored).collect()
}

/// Starts the heartbeat on a thread and runtime of its own: handlers that block their
/// runtime's threads cannot starve it, so their runs keep their leases (its store
/// connections are its own too, made on that runtime). Falls back to the runner's runtime
/// if no thread can be started.
pub(super) fn spawn_heartbeat(weak: Weak<Shared>, durable: Arc<Durable>) {
    let main = tokio::runtime::Handle::current();
    let (w, d) = (weak.clone(), Arc::clone(&durable));
    let spawned = std::thread::Builder::new()
        .name("taskrunner-heartbeat".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => rt.block_on(async move {
                    let store = d.store.detached();
                    heartbeat(w, d, store.clone(), main).await;
                    // Its own connections end with it (on SQLite it shares the readers).
                    #[cfg(feature = "postgres")]
                    if let Some(pg) = store.as_pg() {
                        pg.close().await;
                    }
                }),
                Err(e) => tracing::warn!("the heartbeat's runtime could not start: {e}"),
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("the heartbeat's thread could not start, it shares the runner's: {e}");
        let store = durable.store.clone();
        let main = tokio::runtime::Handle::current();
        tokio::spawn(heartbeat(weak, durable, store, main));
    }
}

/// Every third of a lease: renews the leases of exactly the claims this process holds (by
/// run and token), hands back runs leased to it that it does not run (a claim whose answer
/// was lost, an end it could not store), cancels here the runs whose cancel was stored,
/// stops those whose lease another process took, and puts back runs of other processes
/// that stopped renewing theirs. `main` is the runner's runtime, where cancels are done.
async fn heartbeat(
    weak: Weak<Shared>,
    durable: Arc<Durable>,
    store: crate::store::Store,
    main: tokio::runtime::Handle,
) {
    let every = (durable.lease / 3).max(Duration::from_millis(20));
    // Whether the runner's runtime is still there: a task spawned on it that a runtime
    // shut down cancels at once, while a busy one merely has not run it yet (its runs keep
    // their leases). Without their runtime the runs can never end: their leases must lapse.
    let mut probe = main.spawn(async {});
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = durable.stop.cancelled() => return,
        }
        if weak.strong_count() == 0 {
            return;
        }
        if probe.is_finished() {
            match (&mut probe).await {
                Err(e) if e.is_cancelled() => return,
                _ => probe = main.spawn(async {}),
            }
        }
        // Runs are only handed back while no claim is between its commit and its runs
        // entering `active` (else a run just claimed would look unknown).
        let gate = durable.claim_gate.try_write();
        let started = Instant::now();
        let held: Vec<_> = lock_std(&durable.active)
            .iter()
            .map(|(id, a)| (*id, a.token))
            .collect();
        let beat = store
            .heartbeat(&durable.owner, &held, durable.lease, gate.is_ok())
            .await;
        drop(gate);
        match beat {
            Ok((renewed, released)) => {
                if released > 0 {
                    tracing::info!(
                        "{released} runs leased to this process but not running here were handed back"
                    );
                    durable.wake_all();
                }
                let renewed: HashMap<_, _> = renewed.into_iter().map(|h| (h.id, h)).collect();
                let cancel = after_renewal(&mut lock_std(&durable.active), &renewed, started);
                if !cancel.is_empty() {
                    if let Some(runner) = upgrade(&weak) {
                        main.spawn(async move {
                            for task in cancel {
                                runner.cancel(task);
                            }
                        });
                    }
                }
            }
            Err(e) => tracing::warn!("renewing leases failed: {e}"),
        }
        // Runs claimed ahead that have waited half a heartbeat for a slot go back to the
        // store, for any process with a free slot: none waits here past one and a half
        // heartbeats from its claim. After the renewal, which has seen the stored cancels:
        // a run whose cancel was seen is not handed back (its cancel ends it here). If the
        // hand-back fails, the runs are kept, to be tried again at the next beat.
        let stale = durable.take_stale(every / 2);
        if !stale.is_empty() {
            match store.release(&stale).await {
                Ok(()) => tracing::debug!("{} runs claimed ahead were handed back", stale.len()),
                Err(e) => {
                    tracing::warn!("handing back runs claimed ahead failed: {e}");
                    durable.keep_stale(&stale);
                }
            }
        }
        match store.rescue_others(&durable.owner).await {
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
