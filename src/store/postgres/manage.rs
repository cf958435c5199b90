//! The PgStore's statements for recovery, cancel, retention and reading runs.

use super::*;

/// How long until the next delayed or waiting run is due: the first of each kind, each found
/// in its own index (the claim's, the waiting runs').
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
       ORDER BY scheduled_at LIMIT 1)) AS d";

impl PgStore {
    /// Puts back the runs whose lease expired by the database's clock (all, or all but
    /// `except`'s: a live process never takes its own runs), a recovery each (not an
    /// attempt: the claim that takes it next fails it past its definition's
    /// `max_recoveries`), or cancels those whose cancel was asked.
    pub(crate) async fn rescue(&self, except: Option<&str>) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE taskrunner_runs SET \
               status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END, \
               error = CASE WHEN cancel_requested THEN 'cancelled' ELSE error END, \
               error_kind = CASE WHEN cancel_requested THEN 'cancelled' ELSE error_kind END, \
               finished_at = CASE WHEN cancel_requested THEN taskrunner_now_ms() ELSE NULL END, \
               recoveries = recoveries + CASE WHEN cancel_requested THEN 0 ELSE 1 END, \
               lease_owner = NULL, lease_expires_at = NULL \
             WHERE status = 'running' AND lease_expires_at <= taskrunner_now_ms() \
               AND lease_owner IS DISTINCT FROM $1",
        )
        .bind(except)
        .execute(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        Ok(done.rows_affected())
    }

    /// The database's clock, in ms since the epoch.
    pub(crate) async fn now_ms(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT taskrunner_now_ms()")
            .fetch_one(&self.inner.pool)
            .await
            .map_err(|e| self.db(e))
    }

    pub(crate) async fn cancel(&self, id: RunId) -> Result<crate::store::Cancelled, StoreError> {
        let db = |e| self.db(e);
        let mut tx = self.inner.pool.begin().await.map_err(db)?;
        let pending = sqlx::query(
            "UPDATE taskrunner_runs SET status = 'cancelled', error = 'cancelled', \
             error_kind = 'cancelled', finished_at = taskrunner_now_ms() \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id.as_i64())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let found = if pending.rows_affected() == 1 {
            CancelFound::Cancelled
        } else {
            let running = sqlx::query(
                "UPDATE taskrunner_runs SET cancel_requested = TRUE \
                 WHERE id = $1 AND status = 'running'",
            )
            .bind(id.as_i64())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if running.rows_affected() == 1 {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CANCEL_CHANNEL)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                CancelFound::Requested
            } else {
                CancelFound::Nothing
            }
        };
        let tree = if found == CancelFound::Nothing {
            Vec::new()
        } else {
            self.cancel_tree(&mut tx, id).await?
        };
        tx.commit().await.map_err(db)?;
        Ok((found, tree))
    }

    pub(crate) async fn prune(
        &self,
        max_age_ms: i64,
        keep: u64,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let db = |e| self.db(e);
        let mut total = 0;
        loop {
            let by_age = sqlx::query(
                "DELETE FROM taskrunner_runs WHERE id IN (SELECT id FROM taskrunner_runs \
                 WHERE finished_at IS NOT NULL AND finished_at < taskrunner_now_ms() - $1 \
                 LIMIT $2)",
            )
            .bind(max_age_ms)
            .bind(batch)
            .execute(&self.inner.pool)
            .await
            .map_err(db)?
            .rows_affected();
            let by_count = sqlx::query(
                "DELETE FROM taskrunner_runs WHERE id IN (SELECT id FROM taskrunner_runs \
                 WHERE finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC \
                 LIMIT $1 OFFSET $2)",
            )
            .bind(batch)
            .bind(i64::try_from(keep).unwrap_or(i64::MAX))
            .execute(&self.inner.pool)
            .await
            .map_err(db)?
            .rows_affected();
            total += by_age + by_count;
            if by_age < batch as u64 && by_count < batch as u64 {
                return Ok(total);
            }
        }
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

    pub(crate) async fn run_info(&self, id: RunId) -> Result<Option<RunInfo>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            info_columns!(),
            " FROM taskrunner_runs WHERE id = $1"
        ))
        .bind(id.as_i64())
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        let now = self.process_now();
        row.map(|row| row::info(&row, now))
            .transpose()
            .map_err(|e| self.db(e))
    }

    pub(crate) async fn outcome(&self, id: RunId) -> Result<Option<Outcome>, StoreError> {
        let row = sqlx::query(
            "SELECT status, output, error, error_kind FROM taskrunner_runs WHERE id = $1",
        )
        .bind(id.as_i64())
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        row.map(|row| row::outcome(&row))
            .transpose()
            .map_err(|e| self.db(e))
    }
}
