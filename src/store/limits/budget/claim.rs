//! The budgeted claim, written once for every backend as a plain function generic over the
//! [`Dialect`]: the window's charges counted, the candidates picked in claim order, the plan
//! ([`plan`]) carried out (refused runs failed, the others claimed by id) and each estimate
//! stored as its attempt's charge, all in the claim's transaction at one time ("now", read
//! once). What differs per backend is a [`Dialect`] item: the pick (SQLite: named indexes
//! inside the one writer's transaction; PostgreSQL: `FOR UPDATE SKIP LOCKED`, the rows held
//! from the pick to the claim), the clock, and how a JSON list of rows is read.
//!
//! A function rather than a macro (as `claim_on!` is): every value it binds or reads is a
//! plain `i64`, `bool`, `String` or `&str`, so the sqlx bounds it needs are few, listed once
//! on the function below; the statements are the dialect's constants.

use std::collections::HashMap;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::{plan, refused, Candidate};
use crate::store::claim::claimed;
use crate::store::dialect::{bind_now, Dialect};
use crate::store::types::Claimed;
use crate::store::StoreError;

/// Deletes queue `$1`'s charges out of the window of `$2` ms before `$now`.
macro_rules! prune_charges {
    ($now:literal) => {
        concat!(
            "DELETE FROM taskrunner_charges WHERE queue = $1 AND at <= ",
            $now,
            " - $2"
        )
    };
}
pub(crate) use prune_charges;

/// `now` (`$now`, read once) and `used`: the units queue `$1`'s charges hold in the window
/// of `$2` ms before it.
macro_rules! charges_in_window {
    ($now:literal) => {
        concat!(
            "SELECT n.now, (SELECT CAST(coalesce(sum(units), 0) AS BIGINT) \
               FROM taskrunner_charges WHERE queue = $1 AND at > n.now - $2) AS used \
             FROM (SELECT ",
            $now,
            " AS now) AS n"
        )
    };
}
pub(crate) use charges_in_window;

/// Fails with error `$1`, at `$2`, the pending runs of `$runs` (the rows `run` of JSON `$3`).
macro_rules! refuse_runs {
    ($runs:expr) => {
        concat!(
            "UPDATE taskrunner_runs SET status = 'failed', error = $1, error_kind = 'failed', \
             finished_at = $2 WHERE id IN (SELECT run FROM (",
            $runs,
            ") AS p) AND status = 'pending'"
        )
    };
}
pub(crate) use refuse_runs;

/// Claims the pending runs of `$picked` (the rows `run, reserved` of JSON `$1`) for owner
/// `$2`, lease end `$3`, at `$4`, adding what each reserves to its `charged`; returns
/// `claimed_columns!`. `$table` as in `renew_leases!`.
macro_rules! claim_picked {
    ($table:literal, $picked:expr) => {
        concat!(
            "UPDATE ",
            $table,
            " SET status = 'running', attempts = attempts + 1, \
             claim_token = claim_token + 1, lease_owner = $2, lease_expires_at = $3, \
             started_at = coalesce(started_at, $4), wait_kind = NULL, wait_signal = NULL, \
             wait_children = 0, charged = CASE WHEN p.reserved > 0 \
               THEN coalesce(charged, 0) + p.reserved ELSE charged END \
             FROM (",
            $picked,
            ") AS p WHERE taskrunner_runs.id = p.run AND taskrunner_runs.status = 'pending' \
             RETURNING ",
            $crate::store::claim::claimed_columns!()
        )
    };
}
pub(crate) use claim_picked;

/// Stores, for queue `$1` at `$2`, the charges of `$charges` (the rows `run, token,
/// attempt, units` of JSON `$3`).
macro_rules! insert_charges {
    ($charges:expr) => {
        concat!(
            "INSERT INTO taskrunner_charges (queue, run_id, token, attempt, at, units) \
             SELECT $1, c.run, c.token, c.attempt, $2, c.units FROM (",
            $charges,
            ") AS c"
        )
    };
}
pub(crate) use insert_charges;

/// Claims up to `limit` runs of `queue` whose estimates fit its global budget `(units,
/// per)`, in the claim's transaction `tx` (under the lock its global limits take): the
/// claimed runs, each with the units it `reserved`. `to` is the claim's owner, lease (ms)
/// and clock ([`Dialect::bound_now`]).
pub(crate) async fn claim_budgeted<D>(
    store: &D,
    tx: &mut <D::Db as Database>::Connection,
    queue: &str,
    names: &D::Names,
    limit: i64,
    (owner, lease_ms, now): (&str, i64, Option<i64>),
    (units, per): (i64, i64),
) -> Result<Vec<Claimed>, StoreError>
where
    D: Dialect,
    for<'c> &'c mut <D::Db as Database>::Connection: Executor<'c, Database = D::Db>,
    <D::Db as Database>::Arguments: IntoArguments<D::Db>,
    &'static str: ColumnIndex<<D::Db as Database>::Row>,
    for<'a> &'a str: Encode<'a, D::Db> + Type<D::Db>,
    for<'a> &'a D::Names: Encode<'a, D::Db> + Type<D::Db>,
    for<'a> i64: Encode<'a, D::Db> + Decode<'a, D::Db> + Type<D::Db>,
    for<'a> String: Encode<'a, D::Db> + Decode<'a, D::Db> + Type<D::Db>,
    for<'a> i32: Decode<'a, D::Db> + Type<D::Db>,
    for<'a> bool: Decode<'a, D::Db> + Type<D::Db>,
{
    let db = |e| store.error(e);
    bind_now!(now, sqlx::query(D::PRUNE_CHARGES).bind(queue).bind(per))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let window = bind_now!(now, sqlx::query(D::CHARGES_IN_WINDOW).bind(queue).bind(per))
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
    let now: i64 = window.try_get("now").map_err(db)?;
    let used: i64 = window.try_get("used").map_err(db)?;
    let candidates = sqlx::query(D::PICK_BUDGETED)
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
        let runs = json(
            plan.refuse
                .iter()
                .map(|id| serde_json::json!({ "run": id })),
        );
        sqlx::query(D::REFUSE_RUNS)
            .bind(refused(queue, units))
            .bind(now)
            .bind(runs)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    if plan.claim.is_empty() {
        return Ok(Vec::new());
    }
    let picked = (plan.claim.iter()).map(|(id, n)| serde_json::json!({ "run": id, "reserved": n }));
    let picked = json(picked);
    let mut runs: Vec<Claimed> = sqlx::query(D::CLAIM_PICKED)
        .bind(picked)
        .bind(owner)
        .bind(now.saturating_add(lease_ms))
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?
        .iter()
        .map(claimed)
        .collect::<Result<_, _>>()
        .map_err(db)?;
    let reserved: HashMap<i64, i64> = plan.claim.iter().copied().collect();
    for run in &mut runs {
        run.reserved = reserved.get(&run.id.as_i64()).copied().unwrap_or(0);
    }
    // Collected before the write: no iterator over `runs` is held across an await.
    let charges: Vec<serde_json::Value> = (runs.iter().filter(|r| r.reserved > 0))
        .map(|r| {
            serde_json::json!({
                "run": r.id.as_i64(), "token": r.token, "attempt": r.attempts, "units": r.reserved,
            })
        })
        .collect();
    if !charges.is_empty() {
        sqlx::query(D::INSERT_CHARGES)
            .bind(queue)
            .bind(now)
            .bind(json(charges.into_iter()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    Ok(runs)
}

/// `rows` as the JSON list the dialect's `rows!` reads.
fn json(rows: impl Iterator<Item = serde_json::Value>) -> String {
    serde_json::Value::Array(rows.collect()).to_string()
}
