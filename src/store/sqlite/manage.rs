//! The SqliteStore's wait for its next due run (recovery, cancel, retention and reading
//! runs are shared: `store/dialect/runs.rs`).

use super::*;

/// How long until the next delayed or waiting run is due, or the queue's stored pause ends
/// (20 ms after: the file's clock, a write's time stamp, may lag the timers by a kernel
/// tick, and a claim woken before it reads the end would wait for the next poll): the
/// first of each kind of run, each found in its own index (the claim's, named: the
/// planner would otherwise take the dashboard's (status, queue, id) and walk the waiting
/// runs too; the waiting runs').
pub(super) const NEXT_DUE: &str = "\
    SELECT min(due) - $2 FROM ( \
      SELECT * FROM (SELECT scheduled_at AS due FROM taskrunner_runs \
        INDEXED BY taskrunner_runs_claim \
        WHERE status = 'pending' AND wait_kind IS NULL AND queue = $1 \
          AND scheduled_at > $2 AND name IN (SELECT value FROM json_each($3)) \
        ORDER BY scheduled_at LIMIT 1) \
      UNION ALL \
      SELECT * FROM (SELECT scheduled_at AS due FROM taskrunner_runs \
        INDEXED BY taskrunner_runs_waiting \
        WHERE status = 'pending' AND wait_kind IS NOT NULL AND queue = $1 \
          AND scheduled_at > $2 AND name IN (SELECT value FROM json_each($3)) \
        ORDER BY scheduled_at LIMIT 1) \
      UNION ALL \
      SELECT until_at + 20 FROM taskrunner_queue_pauses \
        WHERE queue = $1 AND until_at + 20 > $2)";

impl SqliteStore {
    /// How long until the next delayed or waiting run of `names` in `queue` is due, in
    /// milliseconds: the first of each kind, each found in its own index.
    pub(crate) async fn next_due(
        &self,
        queue: &str,
        names: &[String],
    ) -> Result<Option<i64>, StoreError> {
        let names = serde_json::to_string(names).unwrap_or_default();
        sqlx::query_scalar(NEXT_DUE)
            .bind(queue)
            .bind(self.now())
            .bind(&names)
            .fetch_one(&self.inner.readers)
            .await
            .map_err(db)
    }
}
