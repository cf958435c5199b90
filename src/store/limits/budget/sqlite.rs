//! The budgeted claim on SQLite, inside the claim's `BEGIN IMMEDIATE` transaction (the one
//! writer holds the file: nothing changes between the pick and the claim).

use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::Row;

use super::{plan, refused, Candidate};
use crate::store::limits::not_paused;
use crate::store::{SqliteStore, StoreError};

/// The candidates, as the claim orders them (each index named, as in the claim): `$1`
/// queue, `$2` now, `$3` names (JSON), `$4` limit.
const PICK: &str = concat!(
    "SELECT id, coalesce(cost, 0) AS cost, wait_kind IS NOT NULL AS resumed FROM ( \
      SELECT * FROM (SELECT id, priority, scheduled_at, cost, wait_kind FROM taskrunner_runs \
        INDEXED BY taskrunner_runs_claim \
        WHERE status = 'pending' AND wait_kind IS NULL AND queue = $1 \
          AND scheduled_at <= $2 AND name IN (SELECT value FROM json_each($3)) \
        ORDER BY priority DESC, scheduled_at, id LIMIT $4) \
      UNION ALL \
      SELECT * FROM (SELECT id, priority, scheduled_at, cost, wait_kind FROM taskrunner_runs \
        INDEXED BY taskrunner_runs_waiting \
        WHERE status = 'pending' AND wait_kind IS NOT NULL AND queue = $1 \
          AND scheduled_at <= $2 AND name IN (SELECT value FROM json_each($3)) \
        ORDER BY scheduled_at LIMIT $4)) \
    WHERE TRUE",
    not_paused!("$1", "$2"),
    " ORDER BY priority DESC, scheduled_at, id LIMIT $4"
);

/// Claims the runs of JSON object `$4` (`{"r<id>": reserved units}`) for owner `$1`, lease
/// end `$2`, at `$3`, adding what each reserves to its `charged`; the claim's columns and
/// `reserved`.
const CLAIM_PICKED: &str = "\
    UPDATE taskrunner_runs SET status = 'running', attempts = attempts + 1, \
    claim_token = claim_token + 1, lease_owner = $1, lease_expires_at = $2, \
    started_at = coalesce(started_at, $3), wait_kind = NULL, wait_signal = NULL, \
    wait_children = 0, charged = CASE WHEN json_extract($4, '$.r' || id) > 0 \
      THEN coalesce(charged, 0) + json_extract($4, '$.r' || id) ELSE charged END \
    WHERE id IN (SELECT CAST(substr(key, 2) AS INTEGER) FROM json_each($4)) \
      AND status = 'pending' \
    RETURNING id, name, priority, input, attempts, max_attempts, claim_token, call_id, \
      scheduled_at, recoveries, json_extract($4, '$.r' || id) AS reserved";

impl SqliteStore {
    /// Claims up to `limit` runs of `queue` whose estimates fit its global budget `(units,
    /// per)`, in the claim's transaction: the rows of the claim, each with the units it
    /// `reserved`. `to` is the claim's owner, lease (ms) and time.
    pub(crate) async fn claim_budgeted(
        &self,
        tx: &mut SqliteConnection,
        queue: &str,
        names: &str,
        limit: i64,
        (owner, lease_ms, now): (&str, i64, Option<i64>),
        (units, per): (i64, i64),
    ) -> Result<Vec<SqliteRow>, StoreError> {
        let now = now.unwrap_or_else(|| self.now());
        claim(
            tx,
            queue,
            names,
            limit,
            (owner, now.saturating_add(lease_ms), now),
            (units, per),
        )
        .await
    }
}

/// [`SqliteStore::claim_budgeted`], `to` the claim's owner, lease end and time.
async fn claim(
    tx: &mut SqliteConnection,
    queue: &str,
    names: &str,
    limit: i64,
    (owner, lease_end, now): (&str, i64, i64),
    (units, per): (i64, i64),
) -> Result<Vec<SqliteRow>, StoreError> {
    let db = |e| StoreError::db(e, None);
    sqlx::query("DELETE FROM taskrunner_charges WHERE queue = $1 AND at <= $2")
        .bind(queue)
        .bind(now.saturating_sub(per))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let used: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(units), 0) FROM taskrunner_charges WHERE queue = $1",
    )
    .bind(queue)
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    let candidates = sqlx::query(PICK)
        .bind(queue)
        .bind(now)
        .bind(names)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?
        .iter()
        .map(|row| {
            Ok(Candidate {
                id: row.try_get("id")?,
                cost: row.try_get("cost")?,
                resumed: row.try_get("resumed")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(db)?;
    let plan = plan(&candidates, units, units.saturating_sub(used));
    if !plan.refuse.is_empty() {
        sqlx::query(
            "UPDATE taskrunner_runs SET status = 'failed', error = $1, error_kind = 'failed', \
             finished_at = $2 WHERE id IN (SELECT value FROM json_each($3)) AND status = 'pending'",
        )
        .bind(refused(queue, units))
        .bind(now)
        .bind(serde_json::to_string(&plan.refuse).unwrap_or_default())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    if plan.claim.is_empty() {
        return Ok(Vec::new());
    }
    let picked: serde_json::Map<String, serde_json::Value> = plan
        .claim
        .iter()
        .map(|(id, reserved)| (format!("r{id}"), (*reserved).into()))
        .collect();
    let rows = sqlx::query(CLAIM_PICKED)
        .bind(owner)
        .bind(lease_end)
        .bind(now)
        .bind(serde_json::Value::Object(picked).to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
    let mut charges = Vec::new();
    for row in &rows {
        let reserved: i64 = row.try_get("reserved").map_err(db)?;
        if reserved > 0 {
            let id: i64 = row.try_get("id").map_err(db)?;
            let token: i64 = row.try_get("claim_token").map_err(db)?;
            let attempt: i32 = row.try_get("attempts").map_err(db)?;
            charges.push(serde_json::json!([id, token, attempt, reserved]));
        }
    }
    if !charges.is_empty() {
        sqlx::query(
            "INSERT INTO taskrunner_charges (queue, run_id, token, attempt, at, units) \
             SELECT $1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
               json_extract(value, '$[2]'), $2, json_extract(value, '$[3]') FROM json_each($3)",
        )
        .bind(queue)
        .bind(now)
        .bind(serde_json::Value::Array(charges).to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    Ok(rows)
}
