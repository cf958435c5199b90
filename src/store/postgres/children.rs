//! Child runs on PostgreSQL: a spawn recorded with the parent's claim (not spawned twice), a
//! join that records the children's outcomes or parks the parent until the last one ends (the
//! `taskrunner_runs_child_done` trigger counts down), and the cancel of a run's tree.
//!
//! A join locks the children's rows (`FOR SHARE`, in id order) before the parent's, the order
//! a child's end takes them (its own row, then the trigger's update of the parent): a child
//! either ended before the join looked, or ends after the parent is parked and counts down.

use super::signals::Tx;
use super::{PgStore, CANCEL_CHANNEL};
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

impl PgStore {
    pub(crate) async fn spawn_child(
        &self,
        id: RunId,
        token: i64,
        idx: i32,
        child: &NewRun,
    ) -> Result<Option<RunId>, StoreError> {
        let db = |e| self.db(e);
        let mut tx = self.begin().await?;
        if self.holds(&mut tx, id, token).await?.is_none() {
            tx.rollback().await.map_err(db)?;
            return Ok(None);
        }
        if let Some(r) = self.record(&mut tx, id, "spawn", &child.name, idx).await? {
            tx.commit().await.map_err(db)?;
            let child = r.value.and_then(|v| v.parse().ok()).unwrap_or(0);
            return Ok(Some(RunId::from_i64(child)));
        }
        let child_id: i64 = sqlx::query_scalar(
            "INSERT INTO taskrunner_runs (name, queue, priority, input, max_attempts, call_id, \
             notify, scheduled_at, created_at, parent_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, taskrunner_now_ms() + $8, taskrunner_now_ms(), \
             $9) RETURNING id",
        )
        .bind(&child.name)
        .bind(&child.queue)
        .bind(child.priority)
        .bind(&child.input)
        .bind(child.max_attempts)
        .bind(&child.call_id)
        .bind(child.notify)
        .bind(child.delay_ms)
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
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(super::RUNS_CHANNEL)
            .bind(&child.queue)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Some(RunId::from_i64(child_id)))
    }

    pub(crate) async fn join_children(
        &self,
        id: RunId,
        token: i64,
        children: &[RunId],
    ) -> Result<JoinStep, StoreError> {
        let db = |e| self.db(e);
        let mut tx = self.begin().await?;
        let ids: Vec<i64> = children.iter().map(|c| c.as_i64()).collect();
        let rows = sqlx::query(
            "SELECT id, status, output, error, error_kind FROM taskrunner_runs \
             WHERE id = ANY($1) ORDER BY id FOR SHARE",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        if self.holds(&mut tx, id, token).await?.is_none() {
            tx.rollback().await.map_err(db)?;
            return Ok(JoinStep::Fenced);
        }
        let found = |child: RunId| -> Result<Option<Outcome>, StoreError> {
            use sqlx::Row as _;
            for row in &rows {
                if row.try_get::<i64, _>("id").map_err(db)? == child.as_i64() {
                    return crate::store::row::outcome(row).map(Some).map_err(db);
                }
            }
            Ok(None)
        };
        let mut outcomes = Vec::with_capacity(children.len());
        let mut left: Vec<RunId> = Vec::new();
        for &child in children {
            let key = child.to_string();
            if let Some(r) = self.record(&mut tx, id, "join", &key, 0).await? {
                if r.done {
                    outcomes.push(outcome_from_json(r.value.as_deref().unwrap_or("")));
                    continue;
                }
            }
            let outcome = found(child)?.unwrap_or_else(|| missing_child(child));
            let done = matches!(
                outcome.status.as_str(),
                "completed" | "failed" | "cancelled"
            );
            let json = done.then(|| outcome_json(&outcome));
            self.write_record(&mut tx, id, "join", &key, 0, None, done, json.as_deref())
                .await?;
            // A run joined twice ends once: it counts once.
            if !done && !left.contains(&child) {
                left.push(child);
            }
            outcomes.push(outcome);
        }
        let step = if left.is_empty() {
            JoinStep::Ready(outcomes)
        } else {
            let left = i32::try_from(left.len()).unwrap_or(i32::MAX);
            self.park(&mut tx, id, token, NEVER_MS, "children", None, left)
                .await?;
            JoinStep::Parked
        };
        tx.commit().await.map_err(db)?;
        Ok(step)
    }

    /// Cancels the unfinished runs under run `id`, in the caller's transaction: pending
    /// (waiting) ones at once, running ones by a stored intent. One statement takes each row
    /// in whichever state it is in when locked (a child that parks or is claimed meanwhile is
    /// still caught); it is repeated, each time with a fresh snapshot, until it finds nothing,
    /// so runs spawned by a tree member before its flag was set are caught too. A flagged run
    /// can neither park nor spawn (`holds` locks its row and requires no cancel pending).
    pub(super) async fn cancel_tree(
        &self,
        tx: &mut Tx,
        id: RunId,
    ) -> Result<Vec<(RunId, CancelFound)>, StoreError> {
        let db = |e| self.db(e);
        let mut found = Vec::new();
        loop {
            let rows: Vec<(i64, String)> = sqlx::query_as(concat!(
                "UPDATE taskrunner_runs SET \
                 cancel_requested = cancel_requested OR status = 'running', \
                 error = CASE WHEN status = 'pending' THEN 'cancelled' ELSE error END, \
                 error_kind = CASE WHEN status = 'pending' THEN 'cancelled' ELSE error_kind END, \
                 finished_at = CASE WHEN status = 'pending' THEN taskrunner_now_ms() \
                   ELSE finished_at END, \
                 status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END \
                 WHERE id IN (",
                tree!(),
                ") AND (status = 'pending' OR (status = 'running' AND NOT cancel_requested)) \
                 RETURNING id, status"
            ))
            .bind(id.as_i64())
            .fetch_all(&mut **tx)
            .await
            .map_err(db)?;
            if rows.is_empty() {
                return Ok(found);
            }
            for (run, status) in rows {
                let run = RunId::from_i64(run);
                if status == "cancelled" {
                    found.push((run, CancelFound::Cancelled));
                } else {
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(CANCEL_CHANNEL)
                        .bind(run.to_string())
                        .execute(&mut **tx)
                        .await
                        .map_err(db)?;
                    found.push((run, CancelFound::Requested));
                }
            }
        }
    }
}
