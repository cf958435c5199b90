//! Durable notifications on SQLite: taken with `DELETE .. RETURNING` inside `BEGIN IMMEDIATE`.

use super::{db, SqliteStore};
use crate::store::notifications::{stored, StoredNotification};
use crate::store::StoreError;

impl SqliteStore {
    pub(crate) async fn prune_notifications(&self, max_age_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM taskrunner_notifications WHERE finished_at < $1")
            .bind(self.now().saturating_sub(max_age_ms))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn take_notifications(
        &self,
        max: i64,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        let mut tx = self.write().await?;
        let rows = sqlx::query(
            "DELETE FROM taskrunner_notifications WHERE id IN \
               (SELECT id FROM taskrunner_notifications ORDER BY id LIMIT $1) \
             RETURNING id, run_id, call_id, name, queue, status, text, finished_at",
        )
        .bind(max)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let mut taken: Vec<(i64, StoredNotification)> = rows
            .iter()
            .map(|row| Ok((sqlx::Row::try_get(row, "id")?, stored(row)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db)?;
        taken.sort_by_key(|(id, _)| *id);
        Ok(taken.into_iter().map(|(_, n)| n).collect())
    }
}
