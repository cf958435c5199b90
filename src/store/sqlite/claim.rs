//! A claimed run's life on SQLite: the claim (a global limit counted in the same
//! transaction), the lease's heartbeat, attempts, the fenced finish and the release of runs a
//! stopping process did not start.

use sqlx::Row;

use super::{db, SqliteStore};
use crate::store::limits::{budget, not_paused};
use crate::store::types::{Claimed, Finish, Held, RunId};
use crate::store::{GlobalLimits, StoreError};

/// The claim: the runs ready to start (the claim index) and the waiting runs whose deadline
/// or wake time passed (the waiting index), in claim order, each scan bounded by "now" ($3).
/// The indexes are named: neither scan may ever walk the other kind of run.
/// Binds: owner, lease end, now, queue, names (JSON), limit.
pub(super) const CLAIM: &str = concat!(
    "UPDATE taskrunner_runs SET status = 'running', attempts = attempts + 1, \
    claim_token = claim_token + 1, lease_owner = $1, lease_expires_at = $2, \
    started_at = coalesce(started_at, $3), wait_kind = NULL, wait_signal = NULL, \
    wait_children = 0 \
    WHERE id IN (SELECT id FROM ( \
      SELECT * FROM (SELECT id, priority, scheduled_at FROM taskrunner_runs \
        INDEXED BY taskrunner_runs_claim \
        WHERE status = 'pending' AND wait_kind IS NULL AND queue = $4 \
          AND scheduled_at <= $3 AND name IN (SELECT value FROM json_each($5)) \
        ORDER BY priority DESC, scheduled_at, id LIMIT $6) \
      UNION ALL \
      SELECT * FROM (SELECT id, priority, scheduled_at FROM taskrunner_runs \
        INDEXED BY taskrunner_runs_waiting \
        WHERE status = 'pending' AND wait_kind IS NOT NULL AND queue = $4 \
          AND scheduled_at <= $3 AND name IN (SELECT value FROM json_each($5)) \
        ORDER BY scheduled_at LIMIT $6)) \
      ORDER BY priority DESC, scheduled_at, id LIMIT $6)",
    not_paused!("$4", "$3"),
    " RETURNING id, name, priority, input, attempts, max_attempts, claim_token, call_id, \
      scheduled_at, recoveries"
);

impl SqliteStore {
    pub(crate) async fn claim(
        &self,
        queue: &str,
        names: &[String],
        max: usize,
        owner: &str,
        lease_ms: i64,
        global: GlobalLimits,
    ) -> Result<Vec<Claimed>, StoreError> {
        let names = serde_json::to_string(names).unwrap_or_default();
        let mut tx = self.write().await?;
        let now = self.now();
        let mut limit = max as i64;
        if let Some(global) = global.concurrency {
            let running: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM taskrunner_runs \
                 WHERE status = 'running' AND queue = $1 AND lease_expires_at > $2",
            )
            .bind(queue)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            limit = limit.min(global as i64 - running);
        }
        if let Some((starts, per)) = global.rate {
            limit = limit.min(starts - claimed_in_window(&mut tx, queue, now, per).await?);
        }
        if limit <= 0 {
            tx.rollback().await.map_err(db)?;
            return Ok(Vec::new());
        }
        let lease_end = now.saturating_add(lease_ms);
        let rows = match global.budget {
            // The runs whose estimates fit the global budget (store/limits/budget.rs).
            Some(budget) => {
                let to = (owner, lease_end, now);
                budget::claim_sqlite(&mut tx, queue, &names, limit, to, budget).await?
            }
            None => sqlx::query(CLAIM)
                .bind(owner)
                .bind(lease_end)
                .bind(now)
                .bind(queue)
                .bind(&names)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?,
        };
        if global.rate.is_some() && !rows.is_empty() {
            sqlx::query("INSERT INTO taskrunner_claim_times (queue, at, runs) VALUES ($1, $2, $3)")
                .bind(queue)
                .bind(now)
                .bind(rows.len() as i64)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        rows.iter()
            .map(claimed)
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    /// Renews the leases of exactly the claims `held` (run, token) that still hold; with
    /// `release`, hands back (to pending, the attempt not counted) the runs leased to
    /// `owner` that it does not hold: claimed by a claim whose answer was lost, or whose
    /// end could not be stored.
    pub(crate) async fn heartbeat(
        &self,
        owner: &str,
        held: &[(RunId, i64)],
        lease_ms: i64,
        release: bool,
    ) -> Result<(Vec<Held>, u64), StoreError> {
        let held = serde_json::to_string(
            &held
                .iter()
                .map(|(id, token)| [id.as_i64(), *token])
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default();
        let mut tx = self.write().await?;
        let rows = sqlx::query(
            "UPDATE taskrunner_runs SET lease_expires_at = $1 \
             FROM (SELECT json_extract(value, '$[0]') AS held_id, \
                 json_extract(value, '$[1]') AS held_token FROM json_each($2)) AS held \
             WHERE id = held.held_id AND claim_token = held.held_token AND status = 'running' \
             RETURNING id, claim_token, cancel_requested",
        )
        .bind(self.now().saturating_add(lease_ms))
        .bind(&held)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let released = if release {
            sqlx::query(
                "UPDATE taskrunner_runs SET status = 'pending', lease_owner = NULL, \
                 lease_expires_at = NULL, attempts = max(attempts - 1, 0) \
                 WHERE status = 'running' AND lease_owner = $1 AND NOT EXISTS ( \
                   SELECT 1 FROM json_each($2) \
                   WHERE json_extract(value, '$[0]') = taskrunner_runs.id \
                     AND json_extract(value, '$[1]') = taskrunner_runs.claim_token)",
            )
            .bind(owner)
            .bind(&held)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected()
        } else {
            0
        };
        tx.commit().await.map_err(db)?;
        let held = rows
            .iter()
            .map(|row| {
                Ok(Held {
                    id: RunId::from_i64(row.try_get("id")?),
                    token: row.try_get("claim_token")?,
                    cancel_requested: row.try_get("cancel_requested")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db)?;
        Ok((held, released))
    }

    pub(crate) async fn finish(&self, batch: &[Finish]) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.write().await?;
        let now = self.now();
        let mut applied = Vec::with_capacity(batch.len());
        for finish in batch {
            let done = sqlx::query(
                "UPDATE taskrunner_runs SET status = $1, output = $2, error = $3, error_kind = $4, \
                 finished_at = $5, lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id = $6 AND claim_token = $7 AND status = 'running'",
            )
            .bind(finish.ending.status())
            .bind(&finish.output)
            .bind(&finish.error)
            .bind(finish.ending.kind())
            .bind(now)
            .bind(finish.id.as_i64())
            .bind(finish.token)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let applied_now = done.rows_affected() == 1
                || sqlx::query_scalar::<_, i64>(
                    // A retry that finds its own write: ended as it would end it.
                    "SELECT count(*) FROM taskrunner_runs WHERE id = $1 AND claim_token = $2 \
                     AND status = $3 AND error IS $4 AND error_kind IS $5",
                )
                .bind(finish.id.as_i64())
                .bind(finish.token)
                .bind(finish.ending.status())
                .bind(&finish.error)
                .bind(finish.ending.kind())
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?
                    == 1;
            applied.push(applied_now);
        }
        tx.commit().await.map_err(db)?;
        Ok(applied)
    }

    pub(crate) async fn record_attempt(
        &self,
        id: RunId,
        token: i64,
        attempts: i32,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE taskrunner_runs SET attempts = $1 \
             WHERE id = $2 AND claim_token = $3 AND status = 'running'",
        )
        .bind(attempts)
        .bind(id.as_i64())
        .bind(token)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if let (Some(error), 1) = (error, done.rows_affected()) {
            sqlx::query(RETRY_ERROR)
                .bind(error)
                .bind(id.as_i64())
                .bind(attempts.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn release(&self, runs: &[(RunId, i64)]) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for (id, token) in runs {
            sqlx::query(
                "UPDATE taskrunner_runs SET status = 'pending', lease_owner = NULL, \
                 lease_expires_at = NULL, attempts = max(attempts - 1, 0) \
                 WHERE id = $1 AND claim_token = $2 AND status = 'running'",
            )
            .bind(id.as_i64())
            .bind(token)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }
}

/// How many runs of `queue` were claimed in the window of `per` ms before `now`; the rows
/// older than the window are deleted first (the write transaction holds the file).
async fn claimed_in_window(
    tx: &mut sqlx::SqliteConnection,
    queue: &str,
    now: i64,
    per: i64,
) -> Result<i64, StoreError> {
    sqlx::query("DELETE FROM taskrunner_claim_times WHERE queue = $1 AND at <= $2")
        .bind(queue)
        .bind(now.saturating_sub(per))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    sqlx::query_scalar("SELECT coalesce(sum(runs), 0) FROM taskrunner_claim_times WHERE queue = $1")
        .bind(queue)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)
}

fn claimed(row: &sqlx::sqlite::SqliteRow) -> Result<Claimed, sqlx::Error> {
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

/// Puts the error of the attempt before on the `retry` event a new attempt just appended
/// (the event's `topic`, unused otherwise for `retry`).
const RETRY_ERROR: &str = "UPDATE taskrunner_run_events SET topic = $1 \
     WHERE run_id = $2 AND kind = 'retry' AND value = $3 AND seq = \
       (SELECT max(seq) FROM taskrunner_run_events WHERE run_id = $2)";
