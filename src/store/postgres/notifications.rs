//! Durable notifications on PostgreSQL: claimed with `FOR UPDATE SKIP LOCKED` and deleted in
//! the same statement, so concurrent drainers never get the same one.

use super::PgStore;
use crate::store::notifications::{stored, StoredNotification};
use crate::store::StoreError;

impl PgStore {
    pub(crate) async fn prune_notifications(&self, max_age_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM taskrunner_notifications WHERE finished_at < taskrunner_now_ms() - $1",
        )
        .bind(max_age_ms)
        .execute(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn take_notifications(
        &self,
        max: i64,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        let rows = sqlx::query(
            "DELETE FROM taskrunner_notifications WHERE id IN \
               (SELECT id FROM taskrunner_notifications ORDER BY id LIMIT $1 \
                FOR UPDATE SKIP LOCKED) \
             RETURNING id, run_id, call_id, name, queue, status, text, finished_at",
        )
        .bind(max)
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        let mut taken: Vec<(i64, StoredNotification)> = rows
            .iter()
            .map(|row| Ok((sqlx::Row::try_get(row, "id")?, stored(row)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| self.db(e))?;
        taken.sort_by_key(|(id, _)| *id);
        Ok(taken.into_iter().map(|(_, n)| n).collect())
    }
}
