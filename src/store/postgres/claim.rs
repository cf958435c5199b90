//! A claimed run's life on PostgreSQL: the claim (`FOR UPDATE SKIP LOCKED`, a global limit
//! counted under an advisory lock), the lease's heartbeat, attempts, the fenced finish and
//! the release of runs a stopping process did not start.

use std::collections::HashSet;

use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{PgStore, LOCK_CLASS, RUNS_CHANNEL};
use crate::store::limits::{budget, not_paused};
use crate::store::types::{Claimed, Finish, Held, RunId};
use crate::store::{GlobalLimits, StoreError};

/// The claim: the runs ready to start (the claim index) and the waiting runs whose deadline
/// or wake time passed (the waiting index), in claim order. "Now" is computed once per
/// statement (an uncorrelated subquery), so it bounds both index scans.
/// Binds: queue, names, limit, owner, lease (ms).
pub(super) const CLAIM: &str = concat!(
    "WITH ready AS ( \
      SELECT id, priority, scheduled_at FROM taskrunner_runs \
      WHERE status = 'pending' AND wait_kind IS NULL AND queue = $1 \
        AND scheduled_at <= (SELECT taskrunner_now_ms()) AND name = ANY($2) \
      ORDER BY priority DESC, scheduled_at, id \
      LIMIT $3 FOR UPDATE SKIP LOCKED), \
    due AS ( \
      SELECT id, priority, scheduled_at FROM taskrunner_runs \
      WHERE status = 'pending' AND wait_kind IS NOT NULL AND queue = $1 \
        AND scheduled_at <= (SELECT taskrunner_now_ms()) AND name = ANY($2) \
      ORDER BY scheduled_at LIMIT $3 FOR UPDATE SKIP LOCKED), \
    picked AS ( \
      SELECT id FROM (SELECT * FROM ready UNION ALL SELECT * FROM due) AS c \
      ORDER BY priority DESC, scheduled_at, id LIMIT $3) \
    UPDATE taskrunner_runs r SET status = 'running', attempts = r.attempts + 1, \
      claim_token = r.claim_token + 1, lease_owner = $4, \
      lease_expires_at = taskrunner_now_ms() + $5, \
      started_at = coalesce(r.started_at, taskrunner_now_ms()), wait_kind = NULL, \
      wait_signal = NULL, wait_children = 0 \
    FROM picked WHERE r.id = picked.id",
    not_paused!("$1", "taskrunner_now_ms()"),
    " RETURNING r.id, r.name, r.priority, r.input, r.attempts, r.max_attempts, \
      r.claim_token, r.call_id, r.scheduled_at, r.recoveries"
);

impl PgStore {
    pub(crate) async fn claim(
        &self,
        queue: &str,
        names: &[String],
        max: usize,
        owner: &str,
        lease_ms: i64,
        global: GlobalLimits,
    ) -> Result<Vec<Claimed>, StoreError> {
        let db = |e| self.db(e);
        let claim = sqlx::query(CLAIM);
        let rows = match global.any() {
            false => claim
                .bind(queue)
                .bind(names)
                .bind(max as i64)
                .bind(owner)
                .bind(lease_ms)
                .fetch_all(&self.inner.pool)
                .await
                .map_err(db)?,
            true => {
                let mut tx = self.inner.pool.begin().await.map_err(db)?;
                sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                    .bind(LOCK_CLASS)
                    .bind(queue)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                let mut limit = max as i64;
                if let Some(global) = global.concurrency {
                    let running: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM taskrunner_runs WHERE status = 'running' \
                         AND queue = $1 AND lease_expires_at > taskrunner_now_ms()",
                    )
                    .bind(queue)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db)?;
                    limit = limit.min(global as i64 - running);
                }
                if let Some((starts, per)) = global.rate {
                    // Rows older than the window go; the rest count.
                    let used: i64 = sqlx::query_scalar(
                        "WITH gone AS (DELETE FROM taskrunner_claim_times \
                           WHERE queue = $1 AND at <= taskrunner_now_ms() - $2) \
                         SELECT coalesce(sum(runs), 0)::int8 FROM taskrunner_claim_times \
                         WHERE queue = $1 AND at > taskrunner_now_ms() - $2",
                    )
                    .bind(queue)
                    .bind(per)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db)?;
                    limit = limit.min(starts - used);
                }
                if limit <= 0 {
                    tx.rollback().await.map_err(db)?;
                    return Ok(Vec::new());
                }
                let rows = match global.budget {
                    // The runs whose estimates fit the global budget (store/limits/budget.rs).
                    Some(budget) => {
                        let to = (owner, lease_ms);
                        budget::claim_pg(&mut tx, queue, names, limit, to, budget, db).await?
                    }
                    None => claim
                        .bind(queue)
                        .bind(names)
                        .bind(limit)
                        .bind(owner)
                        .bind(lease_ms)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db)?,
                };
                if global.rate.is_some() && !rows.is_empty() {
                    // Stamped after the claim: never earlier than the runs' start times.
                    sqlx::query(
                        "INSERT INTO taskrunner_claim_times (queue, at, runs) \
                         VALUES ($1, taskrunner_now_ms(), $2)",
                    )
                    .bind(queue)
                    .bind(rows.len() as i32)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                }
                tx.commit().await.map_err(db)?;
                rows
            }
        };
        let mut claimed: Vec<Claimed> = rows
            .iter()
            .map(claimed)
            .collect::<Result<_, _>>()
            .map_err(db)?;
        claimed.sort_by_key(|c| (std::cmp::Reverse(c.priority), c.scheduled_at, c.id));
        Ok(claimed)
    }

    /// Renews the leases of exactly the claims `held` (run, token) that still hold; with
    /// `release`, hands back (to pending, the attempt not counted) the runs leased to
    /// `owner` that it does not hold: claimed by a claim whose answer was lost, or whose
    /// end could not be stored. One statement.
    pub(crate) async fn heartbeat(
        &self,
        owner: &str,
        held: &[(RunId, i64)],
        lease_ms: i64,
        release: bool,
    ) -> Result<(Vec<Held>, u64), StoreError> {
        let rows = sqlx::query(
            "WITH mine AS (SELECT * FROM UNNEST($1::int8[], $2::int8[]) AS m(id, token)), \
             renewed AS (UPDATE taskrunner_runs r \
               SET lease_expires_at = taskrunner_now_ms() + $3 \
               FROM mine WHERE r.id = mine.id AND r.claim_token = mine.token \
                 AND r.status = 'running' \
               RETURNING r.id, r.claim_token, r.cancel_requested), \
             released AS (UPDATE taskrunner_runs r SET status = 'pending', lease_owner = NULL, \
                 lease_expires_at = NULL, attempts = greatest(r.attempts - 1, 0) \
               WHERE $5 AND r.status = 'running' AND r.lease_owner = $4 AND NOT EXISTS ( \
                 SELECT 1 FROM mine WHERE mine.id = r.id AND mine.token = r.claim_token) \
               RETURNING r.id) \
             SELECT id, claim_token, cancel_requested, FALSE AS released FROM renewed \
             UNION ALL SELECT id, 0::int8, FALSE, TRUE FROM released",
        )
        .bind(held.iter().map(|(id, _)| id.as_i64()).collect::<Vec<_>>())
        .bind(held.iter().map(|(_, token)| *token).collect::<Vec<_>>())
        .bind(lease_ms)
        .bind(owner)
        .bind(release)
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        let held = |row: &PgRow| -> Result<Option<Held>, sqlx::Error> {
            if row.try_get("released")? {
                return Ok(None);
            }
            Ok(Some(Held {
                id: RunId::from_i64(row.try_get("id")?),
                token: row.try_get("claim_token")?,
                cancel_requested: row.try_get("cancel_requested")?,
            }))
        };
        let mut renewed = Vec::with_capacity(rows.len());
        let mut released = 0;
        for row in &rows {
            match held(row).map_err(|e| self.db(e))? {
                Some(h) => renewed.push(h),
                None => released += 1,
            }
        }
        Ok((renewed, released))
    }

    pub(crate) async fn finish(&self, batch: &[Finish]) -> Result<Vec<bool>, StoreError> {
        // A retry that finds the run already ended exactly as it would end it (same token,
        // status, error) finds its own write, committed before its answer was lost.
        let applied: Vec<i64> = sqlx::query_scalar(
            "WITH f AS (SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], \
               $5::text[], $6::text[]) AS f(id, token, status, output, error, kind)), \
             done AS (UPDATE taskrunner_runs r SET status = f.status, output = f.output, \
               error = f.error, error_kind = f.kind, finished_at = taskrunner_now_ms(), \
               lease_owner = NULL, lease_expires_at = NULL \
             FROM f WHERE r.id = f.id AND r.claim_token = f.token AND r.status = 'running' \
             RETURNING r.id) \
             SELECT id FROM done UNION ALL \
             SELECT r.id FROM taskrunner_runs r JOIN f ON r.id = f.id AND r.claim_token = f.token \
             WHERE r.status = f.status AND r.error IS NOT DISTINCT FROM f.error \
               AND r.error_kind IS NOT DISTINCT FROM f.kind",
        )
        .bind(batch.iter().map(|f| f.id.as_i64()).collect::<Vec<_>>())
        .bind(batch.iter().map(|f| f.token).collect::<Vec<_>>())
        .bind(batch.iter().map(|f| f.ending.status()).collect::<Vec<_>>())
        .bind(batch.iter().map(|f| f.output.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(|f| f.error.clone()).collect::<Vec<_>>())
        .bind(batch.iter().map(|f| f.ending.kind()).collect::<Vec<_>>())
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        let applied: HashSet<i64> = applied.into_iter().collect();
        Ok(batch
            .iter()
            .map(|f| applied.contains(&f.id.as_i64()))
            .collect())
    }

    pub(crate) async fn record_attempt(
        &self,
        id: RunId,
        token: i64,
        attempts: i32,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.inner.pool.begin().await.map_err(|e| self.db(e))?;
        let done = sqlx::query(
            "UPDATE taskrunner_runs SET attempts = $1 \
             WHERE id = $2 AND claim_token = $3 AND status = 'running'",
        )
        .bind(attempts)
        .bind(id.as_i64())
        .bind(token)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.db(e))?;
        if let (Some(error), 1) = (error, done.rows_affected()) {
            // The trigger's `retry` row, seen by this later statement of the transaction:
            // it gets the attempt before's error (its `topic`, unused otherwise).
            sqlx::query(
                "UPDATE taskrunner_run_events SET topic = $1 \
                 WHERE run_id = $2 AND kind = 'retry' AND value = $3 AND seq = \
                   (SELECT max(seq) FROM taskrunner_run_events WHERE run_id = $2)",
            )
            .bind(error)
            .bind(id.as_i64())
            .bind(attempts.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db(e))?;
        }
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn release(&self, runs: &[(RunId, i64)]) -> Result<(), StoreError> {
        sqlx::query(
            "WITH released AS ( \
               UPDATE taskrunner_runs r SET status = 'pending', lease_owner = NULL, \
                 lease_expires_at = NULL, attempts = greatest(r.attempts - 1, 0) \
               FROM UNNEST($1::int8[], $2::int8[]) AS f(id, token) \
               WHERE r.id = f.id AND r.claim_token = f.token AND r.status = 'running' \
               RETURNING r.queue) \
             SELECT pg_notify($3, q) FROM (SELECT DISTINCT queue AS q FROM released) AS s",
        )
        .bind(runs.iter().map(|(id, _)| id.as_i64()).collect::<Vec<_>>())
        .bind(runs.iter().map(|(_, token)| *token).collect::<Vec<_>>())
        .bind(RUNS_CHANNEL)
        .execute(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        Ok(())
    }
}

fn claimed(row: &PgRow) -> Result<Claimed, sqlx::Error> {
    Ok(Claimed {
        id: RunId::from_i64(row.try_get("id")?),
        name: row.try_get("name")?,
        priority: row.try_get("priority")?,
        input: row.try_get("input")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        token: row.try_get("claim_token")?,
        call_id: row.try_get("call_id")?,
        scheduled_at: row.try_get("scheduled_at")?,
        recoveries: row.try_get("recoveries")?,
        // Only a budgeted claim returns it (store/limits/budget.rs).
        reserved: row.try_get("reserved").unwrap_or(0),
    })
}
