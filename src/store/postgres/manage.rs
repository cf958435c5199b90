//! The PgStore's clock and wait for its next due run (recovery, cancel, retention and
//! reading runs are shared: `store/dialect/runs.rs`).

use super::*;

/// How long until the next delayed or waiting run is due, or the queue's stored pause ends
/// (20 ms after, as on SQLite): the first of each kind of run, each found in its own index (the claim's, the waiting
/// runs').
pub(super) const NEXT_DUE: &str = "\
    WITH now AS MATERIALIZED (SELECT taskrunner_now_ms() AS t) \
    SELECT min(due) - (SELECT t FROM now) FROM ( \
      (SELECT scheduled_at AS due FROM taskrunner_runs \
       WHERE status = 'pending' AND wait_kind IS NULL AND queue = $1 \
         AND scheduled_at > (SELECT t FROM now) AND name = ANY($2) \
       ORDER BY scheduled_at LIMIT 1) \
      UNION ALL \
      (SELECT scheduled_at AS due FROM taskrunner_runs \
       WHERE status = 'pending' AND wait_kind IS NOT NULL AND queue = $1 \
         AND scheduled_at > (SELECT t FROM now) AND name = ANY($2) \
       ORDER BY scheduled_at LIMIT 1) \
      UNION ALL \
      (SELECT until_at + 20 FROM taskrunner_queue_pauses \
       WHERE queue = $1 AND until_at + 20 > (SELECT t FROM now))) AS d";

impl PgStore {
    /// The database's clock, in ms since the epoch.
    pub(crate) async fn now_ms(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT taskrunner_now_ms()")
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| self.db(e))
    }

    /// How long until the next delayed or waiting run of `names` in `queue` is due, in
    /// milliseconds: the first of each kind, each found in its own index.
    pub(crate) async fn next_due(
        &self,
        queue: &str,
        names: &[String],
    ) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(NEXT_DUE)
            .bind(queue)
            .bind(names)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| self.db(e))
    }
}
