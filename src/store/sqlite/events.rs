//! What run streams do only on SQLite (the rest is `events_on!`, expanded by `dialect.rs`):
//! appends under the one writer's `BEGIN IMMEDIATE` (so offsets are taken one at a time),
//! and the `-wal` watcher that wakes this process's readers when any writer commits. Live
//! events stay in their process: SQLite has no way to reach another.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::{QueryBuilder, Row};

use super::{db, SqliteStore};
use crate::store::dialect::{Fenced, Streams};
use crate::store::events::{EmitRow, Hub, LiveRow, WATCH_IDLE};
use crate::store::types::RunId;
use crate::store::StoreError;

/// The fence of an append: run `$1` is `running` under claim token `$2` (a backend that
/// appends in several statements holds its write lock first).
const FENCE_RUN: &str = "SELECT 1 FROM taskrunner_runs WHERE id = $1 \
     AND claim_token = $2 AND status = 'running'";

/// Run `$1`'s next offset (`next_seq`) and its count of stored emits (`stored`).
const NEXT_OFFSETS: &str = "SELECT (SELECT coalesce(max(seq) + 1, 0) \
       FROM taskrunner_run_events WHERE run_id = $1) AS next_seq, \
     (SELECT coalesce(max(emit_index) + 1, 0) FROM taskrunner_run_events \
       WHERE run_id = $1 AND emit_index IS NOT NULL) AS stored";

/// The head of the `INSERT` of emits; its rows are `(run, seq, at, 'emit', topic, value,
/// emit index)`.
const INSERT_EVENTS: &str =
    "INSERT INTO taskrunner_run_events (run_id, seq, at, kind, topic, value, emit_index) ";

/// Rows one `INSERT` carries (six bound values a row, well under SQLite's limit).
const INSERT_CHUNK: usize = 1000;

/// How often the watcher looks at the `-wal` file.
const WATCH_EVERY: Duration = Duration::from_micros(250);

/// After a change of the `-wal` file, readers are woken again this much later (see
/// [`watch_wal`]).
const WAKE_AGAIN: [Duration; 2] = [Duration::from_micros(400), Duration::from_millis(1)];

impl Streams for SqliteStore {
    fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// One `BEGIN IMMEDIATE` transaction on the one writer, so offsets are taken one at a
    /// time.
    async fn append_fenced(&self, run: RunId, token: i64, emits: &[EmitRow]) -> Fenced {
        let mut tx = self.write().await?;
        let held: Option<i64> = sqlx::query_scalar(FENCE_RUN)
            .bind(run.as_i64())
            .bind(token)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if held.is_none() {
            tx.rollback().await.map_err(db)?;
            return Ok(None);
        }
        let row = sqlx::query(NEXT_OFFSETS)
            .bind(run.as_i64())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let mut next_seq: i64 = row.try_get("next_seq").map_err(db)?;
        let stored: i64 = row.try_get("stored").map_err(db)?;
        let fresh: Vec<&EmitRow> = emits.iter().filter(|e| e.index >= stored).collect();
        for chunk in fresh.chunks(INSERT_CHUNK) {
            let mut insert = QueryBuilder::new(INSERT_EVENTS);
            insert.push_values(chunk, |mut b, e| {
                b.push_bind(run.as_i64())
                    .push_bind(next_seq)
                    .push_bind(e.at)
                    .push("'emit'")
                    .push_bind(e.topic.as_str())
                    .push_bind(e.value.as_str())
                    .push_bind(e.index);
                next_seq += 1;
            });
            insert.build().execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(Some((next_seq, !fresh.is_empty())))
    }

    /// Live events stay in this process: SQLite has no way to reach another.
    async fn send_live(&self, _rows: &[Arc<LiveRow>]) -> Result<(), StoreError> {
        Ok(())
    }

    /// The `-wal` watcher.
    fn start_watcher(&self) {
        let mut wal = self.inner.path.clone().into_os_string();
        wal.push("-wal");
        watch_wal(Arc::clone(&self.inner.hub), wal.into());
    }
}

/// Wakes every reader of `hub` when the `-wal` file changes (a commit by any connection, in
/// any process), until nobody has read for [`WATCH_IDLE`]. A commit the file's size and
/// time do not show (the same size, within the clock's tick) is seen by the readers' poll.
///
/// A thread of its own, not a tokio timer: the timer's millisecond ticks would add a
/// millisecond or two to every delivery across processes; a look costs one `stat`.
fn watch_wal(hub: Arc<Hub>, wal: std::path::PathBuf) {
    let look = |wal: &std::path::Path| {
        std::fs::metadata(wal)
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
    };
    let watcher = Arc::clone(&hub);
    let spawned = std::thread::Builder::new()
        .name("taskrunner-wal-watch".into())
        .spawn(move || {
            let hub = watcher;
            let mut seen: Option<(u64, Option<SystemTime>)> = look(&wal);
            let mut idle_since: Option<std::time::Instant> = None;
            // The file changes as a commit's frames are written, a moment before the commit
            // is visible: a reader woken then may find nothing, so it is woken twice more.
            let mut again: Vec<std::time::Instant> = Vec::new();
            loop {
                std::thread::sleep(WATCH_EVERY);
                let now = look(&wal);
                if now != seen {
                    seen = now;
                    hub.wake_all();
                    let at = std::time::Instant::now();
                    again = WAKE_AGAIN.iter().rev().map(|d| at + *d).collect();
                } else if again
                    .last()
                    .is_some_and(|at| std::time::Instant::now() >= *at)
                {
                    again.pop();
                    hub.wake_all();
                }
                if hub.idle(false) {
                    let since = *idle_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() >= WATCH_IDLE && hub.idle(true) {
                        return;
                    }
                } else {
                    idle_since = None;
                }
            }
        });
    if let Err(e) = spawned {
        // The readers' poll still finds every event, only later.
        tracing::warn!("could not start the SQLite run-stream watcher: {e}");
        hub.watcher_gone();
    }
}
