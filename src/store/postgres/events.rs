//! What run streams do only on PostgreSQL (the rest is `events_on!`, expanded by
//! `dialect.rs`): appends in one call of `taskrunner_append_emits` (migration 0008), which
//! holds the run's row while it takes offsets; live events to other processes through
//! `NOTIFY`; and the `LISTEN` loop that wakes this process's readers.

use std::sync::Arc;
use std::time::Duration;

use super::PgStore;
use crate::store::dialect::{Fenced, Streams};
use crate::store::events::{EmitRow, Hub, LiveRow, EVENTS_CHANNEL, WATCH_IDLE};
use crate::store::types::RunId;
use crate::store::StoreError;

/// `NOTIFY` payloads must stay under 8,000 bytes: a bigger live event stays in its process.
const MAX_NOTIFY: usize = 7900;

impl Streams for PgStore {
    fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// One round trip, a call of `taskrunner_append_emits`, which holds the run's row (`FOR
    /// NO KEY UPDATE`, fenced by the claim), so that the append is ordered with every other
    /// writer of the run's log (a status change's trigger runs under its update's lock),
    /// then takes the offsets and notifies `taskrunner_events` if it wrote.
    async fn append_fenced(&self, run: RunId, token: i64, emits: &[EmitRow]) -> Fenced {
        let next_seq: i64 = sqlx::query_scalar(
            "SELECT taskrunner_append_emits($1, $2, $3::int8[], $4::text[], $5::text[], $6::int8[])",
        )
        .bind(run.as_i64())
        .bind(token)
        .bind(emits.iter().map(|e| e.at).collect::<Vec<_>>())
        .bind(emits.iter().map(|e| e.topic.as_str()).collect::<Vec<_>>())
        .bind(emits.iter().map(|e| e.value.as_str()).collect::<Vec<_>>())
        .bind(emits.iter().map(|e| e.index).collect::<Vec<_>>())
        .fetch_one(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        // The function does not say whether it wrote: this process's readers are woken.
        Ok((next_seq >= 0).then_some((next_seq, true)))
    }

    /// Other processes' readers through `NOTIFY` (a payload over 7,900 bytes stays in this
    /// process).
    async fn send_live(&self, rows: &[Arc<LiveRow>]) -> Result<(), StoreError> {
        let mut payloads = Vec::with_capacity(rows.len());
        for row in rows {
            match serde_json::to_string(&**row) {
                Ok(text) if text.len() <= MAX_NOTIFY => payloads.push(text),
                _ => tracing::debug!(
                    run = row.run,
                    topic = %row.topic,
                    "a live event over 7,900 bytes reaches only this process's readers"
                ),
            }
        }
        if payloads.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "SELECT pg_notify($1, p) FROM UNNEST($2::text[]) WITH ORDINALITY AS t(p, o) ORDER BY o",
        )
        .bind(EVENTS_CHANNEL)
        .bind(payloads)
        .execute(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        Ok(())
    }

    /// The `LISTEN` loop.
    fn start_watcher(&self) {
        tokio::spawn(listen(self.clone()));
    }
}

/// Hands `taskrunner_events` notifications to this process's readers until nobody has read
/// for [`WATCH_IDLE`]. Every (re)connect wakes every reader: a notification may have been
/// lost meanwhile. A failed connection is retried every second while anyone reads.
async fn listen(store: PgStore) {
    let hub = Arc::clone(&store.inner.hub);
    let mut idle_since: Option<tokio::time::Instant> = None;
    // Whether nobody has read for WATCH_IDLE (the watcher then stops, under the hub's lock).
    let mut done = |hub: &Hub| {
        if !hub.idle(false) {
            idle_since = None;
            return false;
        }
        let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
        since.elapsed() >= WATCH_IDLE && hub.idle(true)
    };
    loop {
        if store.inner.pool.is_closed() {
            hub.watcher_gone();
            return;
        }
        let mut listener = match connect(&store).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!("LISTEN for run streams failed, readers poll meanwhile: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                if done(&hub) {
                    return;
                }
                continue;
            }
        };
        hub.wake_all();
        loop {
            let message = tokio::select! {
                m = listener.try_recv() => Some(m),
                _ = tokio::time::sleep(WATCH_IDLE) => None,
            };
            if done(&hub) {
                return;
            }
            match message {
                // Nothing for a while: only the idle check.
                None => {}
                Some(Ok(Some(n))) => deliver(&hub, n.payload()),
                // The connection was lost and is back: anything may have been missed.
                Some(Ok(None)) => hub.wake_all(),
                Some(Err(e)) => {
                    tracing::warn!("LISTEN for run streams failed, reconnecting: {e}");
                    break;
                }
            }
        }
    }
}

async fn connect(store: &PgStore) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(&store.inner.pool).await?;
    listener.listen(EVENTS_CHANNEL).await?;
    Ok(listener)
}

/// A notification's payload: a run's id (its log grew) or a live event (JSON).
fn deliver(hub: &Hub, payload: &str) {
    if payload.starts_with('{') {
        match serde_json::from_str::<LiveRow>(payload) {
            // This process's own live events were handed over directly.
            Ok(row) if row.origin != hub.origin => hub.live(Arc::new(row)),
            Ok(_) => {}
            Err(e) => tracing::debug!("a live event that does not parse: {e}"),
        }
    } else if let Ok(run) = payload.parse::<RunId>() {
        hub.wake(run);
    }
}
