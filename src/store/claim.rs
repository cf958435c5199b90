//! A claimed run's life, written once for every backend (`claim_on!`, expanded by each
//! backend's `dialect.rs`): the claim (with the queue's claim limits, computed in one place,
//! [`claim_limit`](#claim_limit)), the lease's heartbeat, attempts, the fenced end and the
//! release of runs a stopping process did not start.
//!
//! What differs per backend is a [`Dialect`](super::dialect::Dialect) item: the claim
//! statement itself (SQLite: named indexes inside the one writer's `BEGIN IMMEDIATE`;
//! PostgreSQL: `FOR UPDATE SKIP LOCKED`), the lock a claim counting limits takes
//! (PostgreSQL: an advisory lock per queue; SQLite: the file's), how a JSON list of runs is
//! read (`json_each` / `jsonb_array_elements`) and the clock. Lists of runs and ends are
//! bound as one JSON text on both.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::types::{Claimed, Finish, RunId};

/// The columns a claim returns, as [`claimed`] reads them.
macro_rules! claimed_columns {
    () => {
        "id, name, priority, input, attempts, max_attempts, claim_token, call_id, \
         scheduled_at, recoveries"
    };
}
pub(crate) use claimed_columns;

/// How many of queue `$1`'s runs are running under a live lease at `$now`.
macro_rules! count_running {
    ($now:literal) => {
        concat!(
            "SELECT count(*) FROM taskrunner_runs \
             WHERE status = 'running' AND queue = $1 AND lease_expires_at > ",
            $now
        )
    };
}
pub(crate) use count_running;

/// Deletes queue `$1`'s claim stamps older than the window of `$2` ms before `$now`.
macro_rules! prune_claim_times {
    ($now:literal) => {
        concat!(
            "DELETE FROM taskrunner_claim_times WHERE queue = $1 AND at <= ",
            $now,
            " - $2"
        )
    };
}
pub(crate) use prune_claim_times;

/// Stamps a claim of `$2` runs of queue `$1` at `$now`.
macro_rules! stamp_claims {
    ($now:literal) => {
        concat!(
            "INSERT INTO taskrunner_claim_times (queue, at, runs) VALUES ($1, ",
            $now,
            ", $2)"
        )
    };
}
pub(crate) use stamp_claims;

/// How many runs of queue `$1` the stamps left in the window hold.
pub(crate) const CLAIMS_IN_WINDOW: &str = "SELECT CAST(coalesce(sum(runs), 0) AS BIGINT) \
     FROM taskrunner_claim_times WHERE queue = $1";

/// `$table` (in the three updates below that join runs to a JSON list): the runs' table as
/// the dialect names it where it must be read by id (SQLite's planner would otherwise walk
/// the running runs' index, each against the whole list). `$lock`: a condition that locks
/// the rows in the backend's lock order before the update takes any (PostgreSQL: highest
/// id first, see its `dialect.rs`), or nothing where the write holds the whole store.
///
/// Renews, to `$now` + `$2` ms, the leases of the claims `$pairs` (run, token) that still
/// hold.
macro_rules! renew_leases {
    ($table:literal, $pairs:expr, $now:literal, $lock:expr) => {
        concat!(
            "UPDATE ",
            $table,
            " SET lease_expires_at = ",
            $now,
            " + $2 FROM (",
            $pairs,
            ") AS held WHERE taskrunner_runs.id = held.run \
               AND taskrunner_runs.claim_token = held.token \
               AND taskrunner_runs.status = 'running'",
            $lock,
            " RETURNING taskrunner_runs.id, taskrunner_runs.claim_token, \
               taskrunner_runs.cancel_requested"
        )
    };
}
pub(crate) use renew_leases;

/// Hands back the runs leased to `$2` that are not among the claims `$pairs`.
macro_rules! release_unheld {
    ($pairs:expr, $greatest:literal) => {
        concat!(
            "UPDATE taskrunner_runs SET status = 'pending', lease_owner = NULL, \
             lease_expires_at = NULL, attempts = ",
            $greatest,
            "(attempts - 1, 0) \
             WHERE status = 'running' AND lease_owner = $2 AND NOT EXISTS ( \
               SELECT 1 FROM (",
            $pairs,
            ") AS held WHERE held.run = taskrunner_runs.id \
                 AND held.token = taskrunner_runs.claim_token)"
        )
    };
}
pub(crate) use release_unheld;

/// Hands back the claims `$pairs` (the attempt not counted); returns their queues.
macro_rules! release_claims {
    ($table:literal, $pairs:expr, $greatest:literal, $lock:expr) => {
        concat!(
            "UPDATE ",
            $table,
            " SET status = 'pending', lease_owner = NULL, \
             lease_expires_at = NULL, attempts = ",
            $greatest,
            "(attempts - 1, 0) FROM (",
            $pairs,
            ") AS held WHERE taskrunner_runs.id = held.run \
               AND taskrunner_runs.claim_token = held.token \
               AND taskrunner_runs.status = 'running'",
            $lock,
            " RETURNING taskrunner_runs.queue"
        )
    };
}
pub(crate) use release_claims;

/// Ends the runs of `$ends` (see [`ends_json`]) whose claim still holds, at `$now`;
/// returns their ids. `$lock` as above: it takes the runs' waiting parents too (a child's
/// end writes its parent's row, through the `taskrunner_runs_child_done` trigger).
macro_rules! finish_runs {
    ($table:literal, $ends:expr, $now:literal, $lock:expr) => {
        concat!(
            "UPDATE ",
            $table,
            " SET status = f.status, output = f.output, \
             error = f.error, error_kind = f.kind, finished_at = ",
            $now,
            ", lease_owner = NULL, lease_expires_at = NULL FROM (",
            $ends,
            ") AS f WHERE taskrunner_runs.id = f.run AND taskrunner_runs.claim_token = f.token \
               AND taskrunner_runs.status = 'running'",
            $lock,
            " RETURNING taskrunner_runs.id"
        )
    };
}
pub(crate) use finish_runs;

/// The ids of the runs of `$ends` already ended exactly as their end says (same token,
/// status, error): a retry finding its own write, committed before its answer was lost.
macro_rules! ended_as_said {
    ($ends:expr) => {
        concat!(
            "SELECT r.id FROM taskrunner_runs r JOIN (",
            $ends,
            ") AS f ON r.id = f.run AND r.claim_token = f.token \
             WHERE r.status = f.status AND r.error IS NOT DISTINCT FROM f.error \
               AND r.error_kind IS NOT DISTINCT FROM f.kind"
        )
    };
}
pub(crate) use ended_as_said;

/// Counts attempt `$1` on run `$2` while claim `$3` holds it.
pub(crate) const RECORD_ATTEMPT: &str = "UPDATE taskrunner_runs SET attempts = $1 \
     WHERE id = $2 AND claim_token = $3 AND status = 'running'";

/// Puts the error of the attempt before on the `retry` event a new attempt just appended
/// (the trigger's row, seen by this later statement of the transaction; its `topic`,
/// unused otherwise for `retry`).
pub(crate) const RETRY_ERROR: &str = "UPDATE taskrunner_run_events SET topic = $1 \
     WHERE run_id = $2 AND kind = 'retry' AND value = $3 AND seq = \
       (SELECT max(seq) FROM taskrunner_run_events WHERE run_id = $2)";

/// Claims (run, token) as the JSON list of pairs the `$pairs` statements read.
pub(crate) fn pairs_json(pairs: &[(RunId, i64)]) -> String {
    let pairs: Vec<[i64; 2]> = pairs.iter().map(|(id, t)| [id.as_i64(), *t]).collect();
    serde_json::to_string(&pairs).unwrap_or_default()
}

/// Ends as the JSON list of objects the `$ends` statements read.
pub(crate) fn ends_json<'a>(ends: impl Iterator<Item = &'a Finish>) -> String {
    let ends: Vec<serde_json::Value> = ends
        .map(|f| {
            serde_json::json!({
                "run": f.id.as_i64(),
                "token": f.token,
                "status": f.ending.status(),
                "output": f.output,
                "error": f.error,
                "kind": f.ending.kind(),
            })
        })
        .collect();
    serde_json::to_string(&ends).unwrap_or_default()
}

/// A claimed run's row (`claimed_columns!`).
pub(crate) fn claimed<'r, R>(row: &'r R) -> Result<Claimed, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
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
        // Set by a budgeted claim (store/limits/budget/claim.rs).
        reserved: 0,
    })
}

mod on;
pub(crate) use on::claim_on;
