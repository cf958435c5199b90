//! The durable side of [`TaskContext::emit`](crate::TaskContext::emit): one [`Emitter`] an
//! attempt of a run, whose flusher task appends the attempt's emits to the run's log in
//! batches, in order, fenced by the claim.
//!
//! `emit` only queues its event (after its size was checked), so a run that emits in a
//! tight loop is not held to one commit an event: while one batch commits, the next
//! gathers. Every queued emit is committed before the run's next step starts and before
//! its end is stored ([`Emitter::flush`]). Emits are counted in each attempt like steps: the
//! n-th emit of a replayed attempt is skipped if the run already stored an n-th emit. Live
//! events go through the same queue, so a reader sees them after the stored emits queued
//! before them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::LeaseWatch;
use crate::store::events::{Appended, EmitRow, LiveRow};
use crate::store::{RunId, Store};
use crate::sync::lock_std;

/// The most emits one append carries.
const MAX_BATCH: usize = 4096;
/// Queued emits past which `emit` waits for the flusher (bounds the memory of a run that
/// emits faster than the store takes it).
const MAX_QUEUED: u64 = 16_384;
/// Tries of an append before the attempt's emits fail.
const WRITE_TRIES: u32 = 3;

/// Why an emit or a flush failed.
#[derive(Debug, Clone)]
pub(crate) enum EmitFailure {
    /// The claim no longer holds the run.
    LeaseLost,
    /// The store refused the append (after retries).
    Store(String),
}

impl std::fmt::Display for EmitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmitFailure::LeaseLost => f.write_str(
                "this process lost the run (its lease expired and another claim holds it): \
                 its emitted events were not stored",
            ),
            EmitFailure::Store(reason) => {
                write!(f, "the run's emitted events could not be stored: {reason}")
            }
        }
    }
}

/// One attempt's emits (cheap to clone; clones share the queue).
#[derive(Debug, Clone)]
pub(crate) struct Emitter(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Holds the queue's sender: the flusher ends once every clone is gone.
    state: Mutex<State>,
    core: Arc<Core>,
}

/// What the flusher shares with the emitter.
#[derive(Debug)]
struct Core {
    run: RunId,
    token: i64,
    store: Store,
    /// Told when an append finds the claim gone: the claim ends in this process.
    lease: LeaseWatch,
    /// How many queued items are committed (or published), or why the flusher stopped.
    done: watch::Sender<Progress>,
}

#[derive(Debug, Default)]
struct State {
    tx: Option<mpsc::UnboundedSender<Item>>,
    /// Emits of this attempt so far (the next one's index).
    next_index: i64,
    /// Items queued so far.
    queued: u64,
}

#[derive(Debug, Clone, Default)]
struct Progress {
    done: u64,
    failed: Option<EmitFailure>,
}

#[derive(Debug)]
enum Item {
    Stored(EmitRow),
    Live {
        at: i64,
        topic: String,
        value: serde_json::Value,
    },
}

// ===== impl Emitter =====

impl Emitter {
    pub(crate) fn new(run: RunId, token: i64, store: Store, lease: LeaseWatch) -> Emitter {
        Emitter(Arc::new(Inner {
            state: Mutex::default(),
            core: Arc::new(Core {
                run,
                token,
                store,
                lease,
                done: watch::Sender::new(Progress::default()),
            }),
        }))
    }

    /// Queues `value` (JSON) under `topic`; waits only when the flusher is far behind.
    pub(crate) async fn emit(&self, topic: &str, value: String) -> Result<(), EmitFailure> {
        self.failed()?;
        let queued = {
            let mut state = lock_std(&self.0.state);
            let index = state.next_index;
            state.next_index += 1;
            let row = EmitRow {
                index,
                at: now_ms(),
                topic: topic.to_owned(),
                value,
            };
            self.queue(&mut state, Item::Stored(row))
        };
        if queued > self.0.core.done.borrow().done + MAX_QUEUED {
            self.wait_for(queued - MAX_QUEUED).await?;
        }
        Ok(())
    }

    /// Queues a live event (never stored).
    pub(crate) fn emit_live(&self, topic: &str, value: serde_json::Value) {
        if self.failed().is_err() {
            return;
        }
        let mut state = lock_std(&self.0.state);
        let item = Item::Live {
            at: now_ms(),
            topic: topic.to_owned(),
            value,
        };
        self.queue(&mut state, item);
    }

    /// Waits until everything queued so far is committed.
    pub(crate) async fn flush(&self) -> Result<(), EmitFailure> {
        let queued = lock_std(&self.0.state).queued;
        self.wait_for(queued).await
    }

    fn failed(&self) -> Result<(), EmitFailure> {
        match &self.0.core.done.borrow().failed {
            Some(failure) => Err(failure.clone()),
            None => Ok(()),
        }
    }

    /// Queues `item`, starting the flusher on the attempt's first; returns how many are queued.
    fn queue(&self, state: &mut State, item: Item) -> u64 {
        let tx = state.tx.get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(flusher(Arc::clone(&self.0.core), rx));
            tx
        });
        if tx.send(item).is_ok() {
            state.queued += 1;
        }
        state.queued
    }

    async fn wait_for(&self, count: u64) -> Result<(), EmitFailure> {
        let mut rx = self.0.core.done.subscribe();
        let progress = rx
            .wait_for(|p| p.done >= count || p.failed.is_some())
            .await
            .map(|p| p.clone())
            .unwrap_or_default();
        match progress.failed {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }
}

/// Appends the attempt's emits in batches and publishes its live events, in queue order,
/// until every clone of the emitter is gone and the queue is drained, or an append fails.
async fn flusher(inner: Arc<Core>, mut rx: mpsc::UnboundedReceiver<Item>) {
    let mut next_seq = 0i64;
    let mut batch = Vec::new();
    let mut carry: Option<Item> = None;
    loop {
        let first = match carry.take() {
            Some(item) => item,
            None => match rx.recv().await {
                Some(item) => item,
                None => return,
            },
        };
        // A run of items of one kind: emits are appended together, live events sent
        // together; the first of the other kind waits for the next round.
        let stored = matches!(first, Item::Stored(_));
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) if matches!(item, Item::Stored(_)) == stored => batch.push(item),
                Ok(item) => {
                    carry = Some(item);
                    break;
                }
                Err(_) => break,
            }
        }
        let count = batch.len() as u64;
        let result = if stored {
            let rows: Vec<EmitRow> = batch
                .drain(..)
                .filter_map(|item| match item {
                    Item::Stored(row) => Some(row),
                    Item::Live { .. } => None,
                })
                .collect();
            append(&inner, &rows).await.map(|seq| next_seq = seq)
        } else {
            let rows: Vec<LiveRow> = batch
                .drain(..)
                .filter_map(|item| match item {
                    Item::Live { at, topic, value } => Some(LiveRow {
                        origin: inner.store.events_origin(),
                        run: inner.run.as_i64(),
                        next_seq,
                        at,
                        topic,
                        value,
                    }),
                    Item::Stored(_) => None,
                })
                .collect();
            if let Err(e) = inner.store.publish_live(rows).await {
                tracing::debug!(run = %inner.run, "a live event did not reach other processes: {e}");
            }
            Ok(())
        };
        match result {
            Ok(()) => inner.done.send_modify(|p| p.done += count),
            Err(failure) => {
                tracing::warn!(run = %inner.run, "the run's emits could not be stored: {failure:?}");
                inner.done.send_modify(|p| p.failed = Some(failure));
                return;
            }
        }
    }
}

/// This process's time, in milliseconds since the Unix epoch: an emit's `at`.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Appends `rows`, retrying a failing store a few times; the log's next offset.
async fn append(inner: &Core, rows: &[EmitRow]) -> Result<i64, EmitFailure> {
    let mut tries = 0;
    loop {
        match inner.store.append_emits(inner.run, inner.token, rows).await {
            Ok(Appended::Done { next_seq }) => return Ok(next_seq),
            Ok(Appended::LeaseLost) => {
                inner.lease.lost();
                return Err(EmitFailure::LeaseLost);
            }
            Err(e) if tries + 1 < WRITE_TRIES => {
                tries += 1;
                tracing::warn!(run = %inner.run, "storing emits failed (try {tries}): {e}");
                tokio::time::sleep(Duration::from_millis(50) * tries).await;
            }
            Err(e) => return Err(EmitFailure::Store(e.to_string())),
        }
    }
}
