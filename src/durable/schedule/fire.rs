//! The fire loop: each process fires the due durable schedules of the definitions it
//! registered, coalescing missed occurrences into one run.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::stored::{fire_times, ms, rebuild};
use crate::durable::{upgrade, Durable};
use crate::runner::Shared;
use crate::store::{to_time, Fire, Fired, ScheduleRow};

/// Fires the due durable schedules of the definitions this process registered: each due one
/// is a compare-and-swap in the store, so the processes that race for it fire it once.
pub(in crate::durable) async fn fire_loop(weak: Weak<Shared>, durable: Arc<Durable>) {
    let names: Vec<String> = durable.defs.keys().cloned().collect();
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = durable.schedules_wake.notified() => {}
            _ = durable.claiming.cancelled() => return,
        }
        let Some(runner) = upgrade(&weak) else {
            return;
        };
        if runner.is_shutting_down() {
            return;
        }
        drop(runner);
        wait = durable.poll;
        // Due by the store's clock (the database's, or the SQLite file's), never this
        // process's: a process whose clock is ahead must not fire early.
        let now = match durable.store.now_ms().await {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!("reading the store's clock failed: {e}");
                continue;
            }
        };
        match durable.store.due_schedules(&names, now).await {
            Ok(due) => {
                for row in due {
                    fire(&durable, &row, now).await;
                }
            }
            Err(e) => tracing::warn!("reading due schedules failed: {e}"),
        }
        if let Ok(Some(due)) = durable.store.next_schedule_due(&names).await {
            let until = Duration::from_millis(u64::try_from(due - now).unwrap_or(0));
            wait = wait.min(until.max(Duration::from_millis(1)));
        }
    }
}

async fn fire(durable: &Durable, row: &ScheduleRow, now: i64) {
    let Some(expected) = row.next_fire_at else {
        return;
    };
    let schedule = match rebuild(row) {
        Ok(schedule) => schedule,
        Err(e) => {
            tracing::warn!(schedule = %row.name, "cannot read the stored schedule: {e}");
            return;
        }
    };
    let origin = to_time(row.origin);
    let now = to_time(now);
    // Coalesce: one run, for the latest occurrence due; the others are counted as skipped.
    let mut fire_at = to_time(expected);
    let mut coalesced = 0;
    while let Some(later) = schedule.next_fire(origin, fire_at).filter(|t| *t <= now) {
        fire_at = later;
        coalesced += 1;
        if coalesced >= 100_000 {
            break;
        }
    }
    let next = schedule
        .next_fire(origin, fire_at.max(now))
        .map(|at| fire_times(&schedule, &row.name, at));
    let fire = Fire {
        name: row.name.clone(),
        expected,
        fire_at: ms(fire_at),
        coalesced,
        next,
        overlap: schedule.overlap,
        max_runs: schedule.max_runs,
    };
    match durable.store.fire_schedule(&fire).await {
        Ok(Fired::Run(id)) => {
            tracing::debug!(schedule = %row.name, run = %id, "durable schedule fired");
            durable.wake_queue(&row.queue);
        }
        Ok(Fired::Skipped) => {
            tracing::debug!(schedule = %row.name, "previous run unfinished: fire skipped");
        }
        Ok(Fired::Lost) => {}
        Err(e) => tracing::warn!(schedule = %row.name, "firing the schedule failed: {e}"),
    }
}
