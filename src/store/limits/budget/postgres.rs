//! The budgeted claim on PostgreSQL, inside the claim's transaction and under its advisory
//! lock on the queue: the candidates are locked (`FOR UPDATE SKIP LOCKED`) from the pick to
//! the claim. "Now" is read once, so the runs' start times and their charges agree.

use sqlx::postgres::{PgConnection, PgRow};
use sqlx::Row;

use super::{plan, refused, Candidate};
use crate::store::limits::not_paused;
use crate::store::{PgStore, StoreError};

/// The candidates, as the claim orders them: `$1` queue, `$2` now, `$3` names, `$4` limit.
const PICK: &str = concat!(
    "WITH ready AS ( \
      SELECT id, priority, scheduled_at, cost, wait_kind FROM taskrunner_runs \
      WHERE status = 'pending' AND wait_kind IS NULL AND queue = $1 \
        AND scheduled_at <= $2 AND name = ANY($3) \
      ORDER BY priority DESC, scheduled_at, id LIMIT $4 FOR UPDATE SKIP LOCKED), \
    due AS ( \
      SELECT id, priority, scheduled_at, cost, wait_kind FROM taskrunner_runs \
      WHERE status = 'pending' AND wait_kind IS NOT NULL AND queue = $1 \
        AND scheduled_at <= $2 AND name = ANY($3) \
      ORDER BY scheduled_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
    SELECT id, coalesce(cost, 0)::int8 AS cost, wait_kind IS NOT NULL AS resumed \
    FROM (SELECT * FROM ready UNION ALL SELECT * FROM due) AS c WHERE TRUE",
    not_paused!("$1", "$2"),
    " ORDER BY priority DESC, scheduled_at, id LIMIT $4"
);

/// Claims runs `$1` reserving `$2` units each, for owner `$3`, at `$4`, lease `$5` ms,
/// adding what each reserves to its `charged`; the claim's columns and `reserved`.
const CLAIM_PICKED: &str = "\
    UPDATE taskrunner_runs r SET status = 'running', attempts = r.attempts + 1, \
      claim_token = r.claim_token + 1, lease_owner = $3, lease_expires_at = $4 + $5, \
      started_at = coalesce(r.started_at, $4), wait_kind = NULL, wait_signal = NULL, \
      wait_children = 0, charged = CASE WHEN p.reserved > 0 \
        THEN coalesce(r.charged, 0) + p.reserved ELSE r.charged END \
    FROM UNNEST($1::int8[], $2::int8[]) AS p(id, reserved) \
    WHERE r.id = p.id AND r.status = 'pending' \
    RETURNING r.id, r.name, r.priority, r.input, r.attempts, r.max_attempts, \
      r.claim_token, r.call_id, r.scheduled_at, r.recoveries, p.reserved";

impl PgStore {
    /// Claims up to `limit` runs of `queue` whose estimates fit its global budget `(units,
    /// per)`, in the claim's transaction (under its advisory lock): the rows of the claim,
    /// each with the units it `reserved`. `to` is the claim's owner and lease (ms); "now"
    /// is the database's, read once.
    pub(crate) async fn claim_budgeted(
        &self,
        tx: &mut PgConnection,
        queue: &str,
        names: &[String],
        limit: i64,
        (owner, lease_ms, _): (&str, i64, Option<i64>),
        (units, per): (i64, i64),
    ) -> Result<Vec<PgRow>, StoreError> {
        use crate::store::dialect::Dialect as _;
        claim(
            tx,
            queue,
            names,
            limit,
            (owner, lease_ms),
            (units, per),
            |e| self.error(e),
        )
        .await
    }
}

/// [`PgStore::claim_budgeted`].
async fn claim(
    tx: &mut PgConnection,
    queue: &str,
    names: &[String],
    limit: i64,
    (owner, lease_ms): (&str, i64),
    (units, per): (i64, i64),
    db: impl Fn(sqlx::Error) -> StoreError,
) -> Result<Vec<PgRow>, StoreError> {
    let now: i64 = sqlx::query_scalar(
        "WITH gone AS (DELETE FROM taskrunner_charges WHERE queue = $1 \
           AND at <= taskrunner_now_ms() - $2) SELECT taskrunner_now_ms()",
    )
    .bind(queue)
    .bind(per)
    .fetch_one(&mut *tx)
    .await
    .map_err(&db)?;
    let used: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(units), 0)::int8 FROM taskrunner_charges \
         WHERE queue = $1 AND at > $2",
    )
    .bind(queue)
    .bind(now.saturating_sub(per))
    .fetch_one(&mut *tx)
    .await
    .map_err(&db)?;
    let candidates = sqlx::query(PICK)
        .bind(queue)
        .bind(now)
        .bind(names)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(&db)?
        .iter()
        .map(|row| {
            Ok(Candidate {
                id: row.try_get("id")?,
                cost: row.try_get("cost")?,
                resumed: row.try_get("resumed")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(&db)?;
    let plan = plan(&candidates, units, units.saturating_sub(used));
    if !plan.refuse.is_empty() {
        sqlx::query(
            "UPDATE taskrunner_runs SET status = 'failed', error = $1, error_kind = 'failed', \
             finished_at = $2 WHERE id = ANY($3) AND status = 'pending'",
        )
        .bind(refused(queue, units))
        .bind(now)
        .bind(&plan.refuse)
        .execute(&mut *tx)
        .await
        .map_err(&db)?;
    }
    if plan.claim.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(CLAIM_PICKED)
        .bind(plan.claim.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(
            plan.claim
                .iter()
                .map(|(_, units)| *units)
                .collect::<Vec<_>>(),
        )
        .bind(owner)
        .bind(now)
        .bind(lease_ms)
        .fetch_all(&mut *tx)
        .await
        .map_err(&db)?;
    let mut charges: (Vec<i64>, Vec<i64>, Vec<i32>, Vec<i64>) = Default::default();
    for row in &rows {
        let reserved: i64 = row.try_get("reserved").map_err(&db)?;
        if reserved > 0 {
            charges.0.push(row.try_get("id").map_err(&db)?);
            charges.1.push(row.try_get("claim_token").map_err(&db)?);
            charges.2.push(row.try_get("attempts").map_err(&db)?);
            charges.3.push(reserved);
        }
    }
    if !charges.0.is_empty() {
        sqlx::query(
            "INSERT INTO taskrunner_charges (queue, run_id, token, attempt, at, units) \
             SELECT $1, c.run_id, c.token, c.attempt, $2, c.units \
             FROM UNNEST($3::int8[], $4::int8[], $5::int4[], $6::int8[]) \
               AS c(run_id, token, attempt, units)",
        )
        .bind(queue)
        .bind(now)
        .bind(&charges.0)
        .bind(&charges.1)
        .bind(&charges.2)
        .bind(&charges.3)
        .execute(&mut *tx)
        .await
        .map_err(&db)?;
    }
    Ok(rows)
}
