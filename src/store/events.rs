//! Run streams in the store: each run's log of events (`taskrunner_run_events`, addressed by
//! offset), the fenced append of a run's emits, paged reads, and the [`Hub`] that wakes the
//! readers of this process when a run's log grows and hands them live events.
//!
//! Wake-ups, so that a reader tails a log without asking the database over and over:
//! - an append by this process wakes its readers of that run at once;
//! - SQLite: a watcher thread looks at the `-wal` file's size and time every 250 µs while
//!   anyone reads, and wakes every reader when another writer (another process, or a status
//!   change here) committed;
//! - PostgreSQL: every append (status changes included, by trigger) notifies
//!   `taskrunner_events` with the run's id, and one `LISTEN` connection a process, opened
//!   while anyone reads, wakes that run's readers; live events travel on the same channel.
//!
//! A reader also polls (every second by default), so a lost wake-up delays an event but
//! never loses it.
//!
//! The store's side is written once (`events_on!`, in `events/sql.rs`): the fenced append's
//! meaning, paged reads, live events to this process; a backend's `dialect.rs` gives the
//! append's shape, live events to other processes and its watcher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::types::RunId;
use super::{Backend, Store, StoreError};
use crate::sync::lock_std;

pub(crate) mod sql;

/// The `NOTIFY` channel of run streams (PostgreSQL).
#[cfg(feature = "postgres")]
pub(crate) const EVENTS_CHANNEL: &str = "taskrunner_events";

/// How many live events a reader may fall behind by before it misses some (stored ones are
/// read from the log, and so never missed; wake-ups are a counter, so never lag).
const SIGNAL_CAPACITY: usize = 1024;

/// How long a backend's watcher lives on with no reader, so that readers coming and going
/// do not reconnect it each time.
pub(crate) const WATCH_IDLE: Duration = Duration::from_secs(10);

/// One stored event, as read from the log.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub(crate) seq: i64,
    pub(crate) at: i64,
    pub(crate) kind: String,
    pub(crate) topic: Option<String>,
    pub(crate) value: Option<String>,
}

/// A stored emit waiting to be appended.
#[derive(Debug, Clone)]
pub(crate) struct EmitRow {
    /// The n-th emit of its run, from 0.
    pub(crate) index: i64,
    pub(crate) at: i64,
    pub(crate) topic: String,
    /// JSON.
    pub(crate) value: String,
}

/// A live event: not stored, handed to the readers reading now.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct LiveRow {
    /// The hub that sent it (so that a process skips its own, coming back by `NOTIFY`).
    #[serde(rename = "o")]
    pub(crate) origin: u64,
    #[serde(rename = "r")]
    pub(crate) run: i64,
    /// The offset the run's next stored event was to get when it was sent: a reader shows it
    /// after the stored events before that offset.
    #[serde(rename = "s")]
    pub(crate) next_seq: i64,
    #[serde(rename = "a")]
    pub(crate) at: i64,
    #[serde(rename = "t")]
    pub(crate) topic: String,
    #[serde(rename = "v")]
    pub(crate) value: serde_json::Value,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Appended {
    /// Written (the emits a replay had stored before skipped); the log's next offset.
    Done { next_seq: i64 },
    /// The claim no longer holds the run: nothing written.
    LeaseLost,
}

/// What a reader hears.
#[derive(Debug, Clone)]
pub(crate) enum Signal {
    /// The run's log may have grown: read it.
    Stored,
    /// A live event of the run.
    Live(Arc<LiveRow>),
}

/// The readers of this process, by run; see the module's docs.
#[derive(Debug)]
pub(crate) struct Hub {
    pub(crate) origin: u64,
    state: Mutex<HubState>,
}

#[derive(Debug, Default)]
struct HubState {
    runs: HashMap<RunId, Channels>,
    /// Whether the backend's watcher runs.
    watching: bool,
}

/// One run's readers: wake-ups (a counter: never lagging, coalesced) and live events.
#[derive(Debug)]
struct Channels {
    wake: watch::Sender<u64>,
    live: broadcast::Sender<Arc<LiveRow>>,
}

/// A reader's place in the [`Hub`]: its signals, until dropped.
#[derive(Debug)]
pub(crate) struct Subscription {
    hub: Arc<Hub>,
    run: RunId,
    rx: Option<(watch::Receiver<u64>, broadcast::Receiver<Arc<LiveRow>>)>,
}

// ===== impl Hub =====

impl Hub {
    pub(crate) fn new() -> Arc<Hub> {
        Arc::new(Hub {
            origin: fastrand::u64(..),
            state: Mutex::default(),
        })
    }

    /// Subscribes to `run`'s signals; says whether the backend's watcher must be started.
    pub(crate) fn subscribe(self: &Arc<Self>, run: RunId) -> (Subscription, bool) {
        let mut state = lock_std(&self.state);
        let channels = state.runs.entry(run).or_insert_with(|| Channels {
            wake: watch::Sender::new(0),
            live: broadcast::Sender::new(SIGNAL_CAPACITY),
        });
        let rx = (channels.wake.subscribe(), channels.live.subscribe());
        let start = !std::mem::replace(&mut state.watching, true);
        let sub = Subscription {
            hub: Arc::clone(self),
            run,
            rx: Some(rx),
        };
        (sub, start)
    }

    /// `run`'s log grew.
    pub(crate) fn wake(&self, run: RunId) {
        if let Some(channels) = lock_std(&self.state).runs.get(&run) {
            channels.wake.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Some log may have grown (a wake-up that names no run, or one that may have been lost).
    pub(crate) fn wake_all(&self) {
        for channels in lock_std(&self.state).runs.values() {
            channels.wake.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    pub(crate) fn live(&self, row: Arc<LiveRow>) {
        let run = RunId::from_i64(row.run);
        if let Some(channels) = lock_std(&self.state).runs.get(&run) {
            let _ = channels.live.send(row);
        }
    }

    /// Whether nobody reads; if so, and `stop`, the watcher is marked stopped (it must then
    /// return), under the same lock a new reader takes to decide to start one.
    pub(crate) fn idle(&self, stop: bool) -> bool {
        let mut state = lock_std(&self.state);
        let idle = state.runs.is_empty();
        if idle && stop {
            state.watching = false;
        }
        idle
    }

    /// The watcher stopped on an error: the next reader starts another.
    pub(crate) fn watcher_gone(&self) {
        lock_std(&self.state).watching = false;
    }
}

// ===== impl Subscription =====

impl Subscription {
    pub(crate) async fn recv(&mut self) -> Option<Signal> {
        let (wake, live) = self.rx.as_mut()?;
        tokio::select! {
            biased;
            changed = wake.changed() => changed.ok().map(|()| {
                wake.borrow_and_update();
                Signal::Stored
            }),
            row = live.recv() => match row {
                Ok(row) => Some(Signal::Live(row)),
                // Fell behind: some live events are lost; the log is read anyway.
                Err(broadcast::error::RecvError::Lagged(_)) => Some(Signal::Stored),
                Err(broadcast::error::RecvError::Closed) => None,
            },
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut state = lock_std(&self.hub.state);
        if state
            .runs
            .get(&self.run)
            .is_some_and(|c| c.live.receiver_count() == 0)
        {
            state.runs.remove(&self.run);
        }
    }
}

// ===== impl Store =====

impl Store {
    /// Appends `emits` to `run`'s log while `token` holds it, skipping those a previous attempt
    /// stored (an emit index below the run's count of stored emits), then wakes this process's
    /// readers.
    pub(crate) async fn append_emits(
        &self,
        run: RunId,
        token: i64,
        emits: &[EmitRow],
    ) -> Result<Appended, StoreError> {
        dispatch!(self, s => s.append_emits(run, token, emits).await)
    }

    /// Hands live events to readers now: this process's at once, others' through `NOTIFY`
    /// on PostgreSQL.
    pub(crate) async fn publish_live(&self, rows: Vec<LiveRow>) -> Result<(), StoreError> {
        dispatch!(self, s => s.publish_live(rows).await)
    }

    /// This store's hub origin, stamped on live events.
    pub(crate) fn events_origin(&self) -> u64 {
        dispatch!(self, s => super::dialect::Streams::hub(s).origin)
    }

    /// Up to `limit` events of `run`'s log from offset `from`, in order.
    pub(crate) async fn read_events(
        &self,
        run: RunId,
        from: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        dispatch!(self, s => s.read_events(run, from, limit, false).await)
    }

    /// Up to `limit` events of `run`'s log from offset `from` that are not emits (status
    /// changes and new attempts), in order: a run's history without reading its emits.
    #[cfg_attr(not(feature = "dashboard"), allow(dead_code))]
    pub(crate) async fn read_status_events(
        &self,
        run: RunId,
        from: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        dispatch!(self, s => s.read_events(run, from, limit, true).await)
    }

    /// `run`'s stored status, or `None` if it is not in the store.
    pub(crate) async fn run_status(&self, run: RunId) -> Result<Option<String>, StoreError> {
        dispatch!(self, s => s.run_status(run).await)
    }

    /// Subscribes to `run`'s wake-ups and live events, starting the watcher if none runs.
    pub(crate) fn subscribe_events(&self, run: RunId) -> Subscription {
        dispatch!(self, s => s.subscribe_events(run))
    }
}
