//! What the shared store layer needs from PostgreSQL ([`Dialect`]): one pool, writes of one
//! statement in autocommit, rows locked where a transaction must hold them (`FOR UPDATE`,
//! `FOR SHARE`, `SKIP LOCKED`), the database's clock (`taskrunner_now_ms()`) read inside
//! the statements, JSON arrays read with `jsonb_array_elements_text`, and `NOTIFY` for new
//! runs and cancels.

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Postgres, Transaction};

use super::PgStore;
use crate::store::dialect::parts::*;
use crate::store::dialect::{Dialect, Waited};
use crate::store::StoreError;

/// Claims (run, token) of the JSON pairs `$1`.
macro_rules! pairs {
    () => {
        "SELECT (value->>0)::int8 AS run, (value->>1)::int8 AS token \
         FROM json_array_elements($1::json)"
    };
}

/// The rows of the JSON array of objects `$json`, a column of type `$ty` each key `$col`.
macro_rules! rows {
    ($json:literal: $col0:ident $ty0:ident $(, $col:ident $ty:ident)*) => {
        concat!(
            "SELECT * FROM json_to_recordset(", $json, "::json) AS j(",
            stringify!($col0), " ", stringify!($ty0),
            $(", ", stringify!($col), " ", stringify!($ty),)*
            ")"
        )
    };
}

/// Runs' ends of the JSON objects `$1` (`claim::ends_json`).
macro_rules! ends {
    () => {
        rows!("$1": run int8, token int8, status text, output text, error text, kind text)
    };
}

// Row locks take one order: every statement that locks several runs' rows, and may wait for
// them, takes them highest id first. A child's id is always above its parent's (the parent
// is stored, and runs, before it spawns it), so this is also "each run after the runs under
// it". The statements:
// - a cancel (`LOCK_RUN`): its run's unfinished tree, the run (its lowest id) last;
// - a batch of ends (`FINISH_RUNS`, `lock_ended!`): the ended runs and their parents waiting
//   for children, whose rows the `taskrunner_runs_child_done` trigger writes after the
//   ends: all taken first, in the order, so the trigger finds them held (a single end,
//   `FINISH_ONE`, takes the child then its parent: in the order with nothing taken ahead);
// - a join (`CHILD_OUTCOMES`, `FOR SHARE`): the children, then the parent (`HOLDS_RUN`);
// - the heartbeat (`RENEW_LEASES`, `lock_held!`) and a release (`RELEASE_CLAIMS`): its runs.
// A statement waiting for a row holds only rows above it; two that take their rows in this
// order cannot wait for each other in a cycle (were each to wait for a row the other
// holds, each of the two rows would be above the other). Writes of one run's row (a wait,
// a signal, a step, a spawn) wait for one row only. Left out of the order: a row that joins
// a set after the statement's snapshot (a run spawned in the tree, or a join parked, while
// the cancel or the batch waited for a lock) is locked by a later statement (the cancel's
// loop, the trigger); PostgreSQL aborts one side if that closes a cycle. Rescue and the
// release of runs not held (`RELEASE_UNHELD`) lock in scan order: they take runs whose
// process is gone, or held by no one.

/// The claims of the JSON pairs `$1` that still hold, locked in the order (above) before
/// the update takes them.
macro_rules! lock_held {
    () => {
        concat!(
            " AND taskrunner_runs.id IN (SELECT r.id FROM taskrunner_runs r JOIN (",
            pairs!(),
            ") AS p ON r.id = p.run AND r.claim_token = p.token WHERE r.status = 'running' \
             ORDER BY r.id DESC FOR NO KEY UPDATE OF r)"
        )
    };
}

/// The runs of the JSON ends `$1` and their parents waiting for children, locked in the
/// order (above) before the update (and its trigger) takes them.
macro_rules! lock_ended {
    () => {
        concat!(
            " AND taskrunner_runs.id IN (SELECT r.id FROM taskrunner_runs r JOIN ( \
               SELECT e.run AS id FROM (",
            ends!(),
            ") AS e UNION SELECT c.parent_id FROM taskrunner_runs c JOIN (",
            ends!(),
            ") AS e ON c.id = e.run) AS k ON r.id = k.id \
             WHERE r.status = 'running' OR (r.status = 'pending' AND r.wait_kind = 'children') \
             ORDER BY r.id DESC FOR NO KEY UPDATE OF r)"
        )
    };
}

impl Dialect for PgStore {
    type Db = Postgres;
    type One = PoolConnection<Postgres>;

    fn reads(&self) -> &PgPool {
        &self.inner.pool
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.inner.pool.begin().await.map_err(|e| self.db(e))
    }

    async fn one(&self) -> Result<Self::One, StoreError> {
        self.inner.pool.acquire().await.map_err(|e| self.db(e))
    }

    async fn done(&self, one: Self::One) -> Result<(), StoreError> {
        drop(one);
        Ok(())
    }

    fn error(&self, error: sqlx::Error) -> StoreError {
        self.db(error)
    }

    fn bound_now(&self) -> Option<i64> {
        None
    }

    // A transaction of its own (an error drops it: rolled back). A wait and a signal both
    // lock the run's row first (`FOR UPDATE`), so a signal sent while a run parks is either
    // seen by the wait or finds the run parked and makes it due.
    async fn wait_write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c Self, &'c mut PgConnection) -> Waited<'c, T> + Send + 'static,
    {
        let mut tx = self.begin_write().await?;
        let done = write(self, &mut tx).await?;
        tx.commit().await.map_err(|e| self.db(e))?;
        Ok(done)
    }

    const SAVE_STEP: &'static str = concat!(
        "WITH r AS (SELECT id FROM taskrunner_runs \
           WHERE id = $1 AND claim_token = $2 AND status = 'running' FOR SHARE) ",
        insert_step!(),
        "SELECT r.id, $3, $4, $5, $6, $7, 1, $2, taskrunner_now_ms() - $8, taskrunner_now_ms()",
        next_step_seq!(),
        " FROM r",
        upsert_step!()
    );

    // ----- waits (signals, children)
    const HOLDS_RUN: &'static str = holds_run!("taskrunner_now_ms()", " FOR UPDATE");
    const WRITE_WAIT: &'static str = write_wait!("taskrunner_now_ms()");
    const PARK_RUN: &'static str = park_run!("greatest");
    const SIGNALED_RUN: &'static str = signaled_run!("taskrunner_now_ms()", " FOR UPDATE");
    const CHILD_OUTCOMES: &'static str = child_outcomes!(
        "SELECT jsonb_array_elements_text($1::jsonb)::bigint",
        " FOR SHARE"
    );

    const TAKE_NOTIFICATIONS: &'static str = take_notifications!(" FOR UPDATE SKIP LOCKED");
    const PRUNE_NOTIFICATIONS: &'static str = prune_notifications!("taskrunner_now_ms()");

    const CREATE_SCHEDULE: &'static str = create_schedule!("taskrunner_now_ms()");
    const DUE_SCHEDULES: &'static str =
        due_schedules!("SELECT jsonb_array_elements_text($2::jsonb)");
    const NEXT_SCHEDULE_DUE: &'static str =
        next_schedule_due!("SELECT jsonb_array_elements_text($1::jsonb)");
    const LOCK_SCHEDULE: &'static str = lock_schedule!(" FOR UPDATE");
    // The run's unfinished tree in the lock order (above): highest id first, so each run
    // after the runs under it and the run itself last.
    const LOCK_RUN: &'static str = "WITH RECURSIVE tree(id) AS (\
         SELECT id FROM taskrunner_runs WHERE id = $1 \
         UNION ALL SELECT r.id FROM taskrunner_runs r JOIN tree t \
           ON r.parent_id = t.id AND r.status IN ('pending', 'running')) \
         SELECT r.id FROM taskrunner_runs r JOIN tree t ON r.id = t.id \
         ORDER BY r.id DESC FOR UPDATE OF r";
    const CANCEL_PENDING: &'static str = cancel_pending!("taskrunner_now_ms()");
    // The channel is `CANCEL_CHANNEL` (checked by a test below).
    const CANCEL_RUNNING: &'static str = "WITH c AS (UPDATE taskrunner_runs \
           SET cancel_requested = TRUE WHERE id = $1 AND status = 'running' RETURNING id) \
         SELECT pg_notify('taskrunner_cancel', c.id::text) FROM c";
    const INSERT_SCHEDULED_RUN: &'static str = insert_scheduled_run!("taskrunner_now_ms()");

    // The channel is `RUNS_CHANNEL` (checked by a test below).
    const NOTIFY_QUEUE: Option<&'static str> = Some("SELECT pg_notify('taskrunner_runs', $1)");

    // ----- the claim, leases and ends

    type Names = Vec<String>;
    fn names(names: &[String]) -> Vec<String> {
        names.to_vec()
    }
    // The ready runs (the claim index) and the waiting runs whose deadline or wake time
    // passed (the waiting index), in claim order, skipping rows another claim holds. "Now"
    // is computed once per statement (an uncorrelated subquery), so it bounds both scans.
    const CLAIM: &'static str = concat!(
        "WITH ready AS ( \
           SELECT id, priority, scheduled_at FROM taskrunner_runs \
           WHERE status = 'pending' AND wait_kind IS NULL AND queue = $3 \
             AND scheduled_at <= (SELECT taskrunner_now_ms()) AND name = ANY($4) \
           ORDER BY priority DESC, scheduled_at, id \
           LIMIT $5 FOR UPDATE SKIP LOCKED), \
         due AS ( \
           SELECT id, priority, scheduled_at FROM taskrunner_runs \
           WHERE status = 'pending' AND wait_kind IS NOT NULL AND queue = $3 \
             AND scheduled_at <= (SELECT taskrunner_now_ms()) AND name = ANY($4) \
           ORDER BY scheduled_at LIMIT $5 FOR UPDATE SKIP LOCKED), \
         picked AS ( \
           SELECT id FROM (SELECT * FROM ready UNION ALL SELECT * FROM due) AS c \
           ORDER BY priority DESC, scheduled_at, id LIMIT $5) \
         UPDATE taskrunner_runs r SET status = 'running', attempts = r.attempts + 1, \
           claim_token = r.claim_token + 1, lease_owner = $1, \
           lease_expires_at = taskrunner_now_ms() + $2, \
           started_at = coalesce(r.started_at, taskrunner_now_ms()), wait_kind = NULL, \
           wait_signal = NULL, wait_children = 0 \
         FROM picked WHERE r.id = picked.id",
        not_paused!("$3", "taskrunner_now_ms()"),
        " RETURNING r.id, r.name, r.priority, r.input, r.attempts, r.max_attempts, \
           r.claim_token, r.call_id, r.scheduled_at, r.recoveries"
    );
    // Class `LOCK_CLASS` (checked by a test below), then the queue.
    const LOCK_QUEUE_CLAIMS: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(1952543595, hashtext($1))");
    const COUNT_RUNNING: &'static str = count_running!("taskrunner_now_ms()");
    const PRUNE_CLAIM_TIMES: &'static str = prune_claim_times!("taskrunner_now_ms()");
    const STAMP_CLAIMS: &'static str = stamp_claims!("taskrunner_now_ms()");
    const RENEW_LEASES: &'static str = renew_leases!(
        "taskrunner_runs",
        pairs!(),
        "taskrunner_now_ms()",
        lock_held!()
    );
    const RELEASE_UNHELD: &'static str = release_unheld!(pairs!(), "greatest");
    const RELEASE_CLAIMS: &'static str =
        release_claims!("taskrunner_runs", pairs!(), "greatest", lock_held!());
    const FINISH_RUNS: &'static str = finish_runs!(
        "taskrunner_runs",
        ends!(),
        "taskrunner_now_ms()",
        lock_ended!()
    );
    // The locks taken ahead cost a single end about a third of its statement's time
    // (measured with pgbench): one end does without them.
    const FINISH_ONE: &'static str =
        finish_runs!("taskrunner_runs", ends!(), "taskrunner_now_ms()", "");
    const ENDED_AS_SAID: &'static str = ended_as_said!(ends!());

    // ----- a queue's global budget
    // The candidates as the claim orders them, locked from the pick to the claim.
    const PICK_BUDGETED: &'static str = concat!(
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
    const PRUNE_CHARGES: &'static str = prune_charges!("taskrunner_now_ms()");
    const CHARGES_IN_WINDOW: &'static str = charges_in_window!("taskrunner_now_ms()");
    const REFUSE_RUNS: &'static str = refuse_runs!(rows!("$3": run int8));
    const CLAIM_PICKED: &'static str =
        claim_picked!("taskrunner_runs", rows!("$1": run int8, reserved int8));
    const INSERT_CHARGES: &'static str =
        insert_charges!(rows!("$3": run int8, token int8, attempt int4, units int8));

    // ----- runs (manage, submit)

    const RESCUE: &'static str = rescue!("taskrunner_now_ms()", "IS DISTINCT FROM");
    const PRUNE_BY_AGE: &'static str = prune_by_age!("taskrunner_now_ms()");
    const RETRY_RUN: &'static str = retry_run!("taskrunner_now_ms()");
    const TRIGGER_SCHEDULE: &'static str =
        trigger_schedule!("taskrunner_now_ms()", "taskrunner_now_ms()::text");
}

crate::store::dialect::capabilities_on!(PgStore);

#[cfg(test)]
mod tests {
    use super::super::{CANCEL_CHANNEL, RUNS_CHANNEL};
    use super::*;

    #[test]
    fn the_notifications_name_the_channels_listened_to() {
        assert!(<PgStore as Dialect>::CANCEL_RUNNING.contains(&format!("'{CANCEL_CHANNEL}'")));
        let notify = <PgStore as Dialect>::NOTIFY_QUEUE.unwrap_or_default();
        assert!(notify.contains(&format!("'{RUNS_CHANNEL}'")));
    }

    #[test]
    fn the_claim_lock_is_of_the_lock_class() {
        let lock = <PgStore as Dialect>::LOCK_QUEUE_CLAIMS.unwrap_or_default();
        assert!(lock.contains(&format!("({}, ", super::super::LOCK_CLASS)));
        assert!(<PgStore as Dialect>::CLAIM.starts_with("WITH ready AS"));
    }
}
