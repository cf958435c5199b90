//! Run streams on SQLite: appends under the one writer's `BEGIN IMMEDIATE` (so offsets are
//! taken one at a time), paged reads on the readers, and the `-wal` watcher that wakes this
//! process's readers when any writer commits.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::{QueryBuilder, Row};

use super::{db, SqliteStore};
use crate::store::events::{Appended, EmitRow, EventRow, Hub, LiveRow, Subscription, WATCH_IDLE};
use crate::store::types::RunId;
use crate::store::StoreError;

/// Rows one `INSERT` carries (six bound values a row, well under SQLite's limit).
const INSERT_CHUNK: usize = 1000;

/// How often the watcher looks at the `-wal` file.
const WATCH_EVERY: Duration = Duration::from_micros(250);

/// After a change of the `-wal` file, readers are woken again this much later (see
/// [`watch_wal`]).
const WAKE_AGAIN: [Duration; 2] = [Duration::from_micros(400), Duration::from_millis(1)];

impl SqliteStore {
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    pub(crate) async fn append_emits(
        &self,
        run: RunId,
        token: i64,
        emits: &[EmitRow],
    ) -> Result<Appended, StoreError> {
        let mut tx = self.write().await?;
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM taskrunner_runs WHERE id = $1 AND claim_token = $2 \
             AND status = 'running'",
        )
        .bind(run.as_i64())
        .bind(token)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if held.is_none() {
            tx.rollback().await.map_err(db)?;
            return Ok(Appended::LeaseLost);
        }
        let row = sqlx::query(
            "SELECT (SELECT coalesce(max(seq) + 1, 0) FROM taskrunner_run_events \
               WHERE run_id = $1) AS next_seq, \
             (SELECT coalesce(max(emit_index) + 1, 0) FROM taskrunner_run_events \
               WHERE run_id = $1 AND emit_index IS NOT NULL) AS stored",
        )
        .bind(run.as_i64())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let mut next_seq: i64 = row.try_get("next_seq").map_err(db)?;
        let stored: i64 = row.try_get("stored").map_err(db)?;
        let fresh: Vec<&EmitRow> = emits.iter().filter(|e| e.index >= stored).collect();
        for chunk in fresh.chunks(INSERT_CHUNK) {
            let mut insert = QueryBuilder::new(
                "INSERT INTO taskrunner_run_events (run_id, seq, at, kind, topic, value, emit_index) ",
            );
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
        if !fresh.is_empty() {
            self.inner.hub.wake(run);
        }
        Ok(Appended::Done { next_seq })
    }

    /// Live events stay in this process: SQLite has no way to reach another.
    pub(crate) async fn publish_live(&self, rows: Vec<LiveRow>) -> Result<(), StoreError> {
        for row in rows {
            self.inner.hub.live(Arc::new(row));
        }
        Ok(())
    }

    pub(crate) async fn read_events(
        &self,
        run: RunId,
        from: i64,
        limit: i64,
        status_only: bool,
    ) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, kind, topic, value FROM taskrunner_run_events \
             WHERE run_id = $1 AND seq >= $2 AND ($4 = 0 OR kind <> 'emit') ORDER BY seq LIMIT $3",
        )
        .bind(run.as_i64())
        .bind(from)
        .bind(limit)
        .bind(status_only)
        .fetch_all(&self.inner.readers)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(EventRow {
                    seq: row.try_get("seq")?,
                    at: row.try_get("at")?,
                    kind: row.try_get("kind")?,
                    topic: row.try_get("topic")?,
                    value: row.try_get("value")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db)
    }

    pub(crate) async fn run_status(&self, run: RunId) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT status FROM taskrunner_runs WHERE id = $1")
            .bind(run.as_i64())
            .fetch_optional(&self.inner.readers)
            .await
            .map_err(db)
    }

    pub(crate) fn subscribe_events(&self, run: RunId) -> Subscription {
        let (sub, start) = self.inner.hub.subscribe(run);
        if start {
            let mut wal = self.inner.path.clone().into_os_string();
            wal.push("-wal");
            watch_wal(Arc::clone(&self.inner.hub), wal.into());
        }
        sub
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
