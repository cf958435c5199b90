//! The SqliteStore's statements for recovery, cancel, retention and reading runs.

use super::*;

/// A run whose lease expired goes back to pending, one recovery more (not an attempt: the
/// claim that takes it next fails it past its definition's `max_recoveries`); a run whose
/// cancel was asked is cancelled.
const RESCUE: &str = "UPDATE taskrunner_runs SET \
       status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END, \
       error = CASE WHEN cancel_requested THEN 'cancelled' ELSE error END, \
       error_kind = CASE WHEN cancel_requested THEN 'cancelled' ELSE error_kind END, \
       finished_at = CASE WHEN cancel_requested THEN $1 ELSE NULL END, \
       recoveries = recoveries + CASE WHEN cancel_requested THEN 0 ELSE 1 END, \
       lease_owner = NULL, lease_expires_at = NULL \
     WHERE status = 'running' AND lease_expires_at <= $1 AND lease_owner IS NOT $2";

/// How long until the next delayed or waiting run is due: the first of each kind, each found
/// in its own index (the claim's, named: the planner would otherwise take the dashboard's
/// (status, queue, id) and walk the waiting runs too; the waiting runs').
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
        ORDER BY scheduled_at LIMIT 1))";

impl SqliteStore {
    /// Puts back the runs whose lease expired (all, or all but `except`'s: a live process
    /// never takes its own runs), a recovery each, or cancels those whose cancel was asked.
    pub(crate) async fn rescue(&self, except: Option<&str>) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let now = self.now();
        let done = sqlx::query(RESCUE)
            .bind(now)
            .bind(except)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn cancel(&self, id: RunId) -> Result<crate::store::Cancelled, StoreError> {
        let mut tx = self.write().await?;
        let pending = sqlx::query(
            "UPDATE taskrunner_runs SET status = 'cancelled', error = 'cancelled', \
             error_kind = 'cancelled', finished_at = $1 WHERE id = $2 AND status = 'pending'",
        )
        .bind(self.now())
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
        let mut total = 0;
        loop {
            let mut tx = self.write().await?;
            let by_age = sqlx::query(
                "DELETE FROM taskrunner_runs WHERE id IN (SELECT id FROM taskrunner_runs \
                 WHERE finished_at IS NOT NULL AND finished_at < $1 LIMIT $2)",
            )
            .bind(self.now().saturating_sub(max_age_ms))
            .bind(batch)
            .execute(&mut *tx)
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
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            tx.commit().await.map_err(db)?;
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
        let names = serde_json::to_string(names).unwrap_or_default();
        sqlx::query_scalar(NEXT_DUE)
            .bind(queue)
            .bind(self.now())
            .bind(&names)
            .fetch_one(&self.inner.readers)
            .await
            .map_err(db)
    }

    pub(crate) async fn run_info(&self, id: RunId) -> Result<Option<RunInfo>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            info_columns!(),
            " FROM taskrunner_runs WHERE id = $1"
        ))
        .bind(id.as_i64())
        .fetch_optional(&self.inner.readers)
        .await
        .map_err(db)?;
        let now = self.now();
        row.map(|row| row::info(&row, now)).transpose().map_err(db)
    }

    pub(crate) async fn outcome(&self, id: RunId) -> Result<Option<Outcome>, StoreError> {
        let row = sqlx::query(
            "SELECT status, output, error, error_kind FROM taskrunner_runs WHERE id = $1",
        )
        .bind(id.as_i64())
        .fetch_optional(&self.inner.readers)
        .await
        .map_err(db)?;
        row.map(|row| row::outcome(&row)).transpose().map_err(db)
    }
}
