//! Child runs on SQLite: a spawn recorded with the parent's claim (not spawned twice), a join
//! that records the children's outcomes or parks the parent until the last one ends (the
//! `taskrunner_runs_child_done` trigger counts down), and the cancel of a run's tree.

use super::signals::Tx;
use super::{db, SqliteStore};
use crate::store::types::{CancelFound, NewRun, Outcome, RunId};
use crate::store::waits::{missing_child, outcome_from_json, outcome_json, JoinStep, NEVER_MS};
use crate::store::StoreError;

/// The runs under `$1`, at any depth, as a literal for `concat!`.
macro_rules! tree {
    () => {
        "WITH RECURSIVE tree(id) AS (\
         SELECT id FROM taskrunner_runs WHERE parent_id = $1 \
         UNION SELECT r.id FROM taskrunner_runs r JOIN tree t ON r.parent_id = t.id) \
         SELECT id FROM tree"
    };
}

impl SqliteStore {
    /// The queues of the runs that were joining any of `ended` and are now due (their last
    /// awaited run ended): their claimers here are woken at once.
    pub(crate) async fn joiners_due(&self, ended: &[RunId]) -> Result<Vec<String>, StoreError> {
        let ended = serde_json::to_string(&ended.iter().map(|id| id.as_i64()).collect::<Vec<_>>())
            .unwrap_or_default();
        sqlx::query_scalar(
            "SELECT DISTINCT r.queue FROM taskrunner_waits w \
             JOIN taskrunner_runs r ON r.id = w.run_id \
             WHERE w.kind = 'join' AND w.done = 0 AND w.idx = 0 \
               AND w.name IN (SELECT CAST(value AS TEXT) FROM json_each($1)) \
               AND r.status = 'pending' AND r.wait_kind IS NULL",
        )
        .bind(&ended)
        .fetch_all(&self.inner.readers)
        .await
        .map_err(db)
    }

    pub(crate) async fn spawn_child(
        &self,
        id: RunId,
        token: i64,
        idx: i32,
        child: &NewRun,
    ) -> Result<Option<RunId>, StoreError> {
        let mut tx = self.write().await?;
        if self.holds(&mut tx, id, token).await?.is_none() {
            tx.rollback().await.map_err(db)?;
            return Ok(None);
        }
        if let Some(r) = self.record(&mut tx, id, "spawn", &child.name, idx).await? {
            tx.commit().await.map_err(db)?;
            let child = r.value.and_then(|v| v.parse().ok()).unwrap_or(0);
            return Ok(Some(RunId::from_i64(child)));
        }
        let now = self.now();
        let child_id: i64 = sqlx::query_scalar(
            "INSERT INTO taskrunner_runs (name, queue, priority, input, max_attempts, call_id, \
             notify, scheduled_at, created_at, parent_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(&child.name)
        .bind(&child.queue)
        .bind(child.priority)
        .bind(&child.input)
        .bind(child.max_attempts)
        .bind(&child.call_id)
        .bind(child.notify)
        .bind(now.saturating_add(child.delay_ms))
        .bind(now)
        .bind(id.as_i64())
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let value = child_id.to_string();
        self.write_record(
            &mut tx,
            id,
            "spawn",
            &child.name,
            idx,
            None,
            true,
            Some(&value),
        )
        .await?;
        tx.commit().await.map_err(db)?;
        Ok(Some(RunId::from_i64(child_id)))
    }

    pub(crate) async fn join_children(
        &self,
        id: RunId,
        token: i64,
        children: &[RunId],
    ) -> Result<JoinStep, StoreError> {
        let mut tx = self.write().await?;
        if self.holds(&mut tx, id, token).await?.is_none() {
            tx.rollback().await.map_err(db)?;
            return Ok(JoinStep::Fenced);
        }
        let mut outcomes = Vec::with_capacity(children.len());
        let mut left = Vec::new();
        for child in children {
            let key = child.to_string();
            if let Some(r) = self.record(&mut tx, id, "join", &key, 0).await? {
                if r.done {
                    outcomes.push(outcome_from_json(r.value.as_deref().unwrap_or("")));
                    continue;
                }
            }
            let row = sqlx::query(
                "SELECT status, output, error, error_kind FROM taskrunner_runs WHERE id = $1",
            )
            .bind(child.as_i64())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            let outcome = match row {
                None => missing_child(*child),
                Some(row) => crate::store::row::outcome(&row).map_err(db)?,
            };
            if is_terminal(&outcome) {
                let json = outcome_json(&outcome);
                self.write_record(&mut tx, id, "join", &key, 0, None, true, Some(&json))
                    .await?;
            } else {
                self.write_record(&mut tx, id, "join", &key, 0, None, false, None)
                    .await?;
                // A run joined twice ends once: it counts once.
                if !left.contains(child) {
                    left.push(*child);
                }
            }
            outcomes.push(outcome);
        }
        let step = if left.is_empty() {
            JoinStep::Ready(outcomes)
        } else {
            let n = i32::try_from(left.len()).unwrap_or(i32::MAX);
            self.park(&mut tx, id, token, NEVER_MS, "children", None, n)
                .await?;
            JoinStep::Parked
        };
        tx.commit().await.map_err(db)?;
        Ok(step)
    }

    /// Cancels the unfinished runs under run `id`, in the caller's (one writer's)
    /// transaction: pending (waiting) ones at once, running ones by a stored intent.
    pub(super) async fn cancel_tree(
        &self,
        tx: &mut Tx,
        id: RunId,
    ) -> Result<Vec<(RunId, CancelFound)>, StoreError> {
        let cancelled: Vec<i64> = sqlx::query_scalar(concat!(
            "UPDATE taskrunner_runs SET status = 'cancelled', error = 'cancelled', \
             error_kind = 'cancelled', finished_at = $2 \
             WHERE id IN (",
            tree!(),
            ") AND status = 'pending' RETURNING id"
        ))
        .bind(id.as_i64())
        .bind(self.now())
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        let requested: Vec<i64> = sqlx::query_scalar(concat!(
            "UPDATE taskrunner_runs SET cancel_requested = TRUE \
             WHERE id IN (",
            tree!(),
            ") AND status = 'running' RETURNING id"
        ))
        .bind(id.as_i64())
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        let found = |ids: Vec<i64>, how| ids.into_iter().map(move |i| (RunId::from_i64(i), how));
        Ok(found(cancelled, CancelFound::Cancelled)
            .chain(found(requested, CancelFound::Requested))
            .collect())
    }
}

fn is_terminal(outcome: &Outcome) -> bool {
    matches!(
        outcome.status.as_str(),
        "completed" | "failed" | "cancelled"
    )
}
