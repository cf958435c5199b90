//! What the shared store layer needs from SQLite ([`Dialect`]): reads on the readers, every
//! write in a `BEGIN IMMEDIATE` transaction on the one writer (the file's lock taken first,
//! so no write fails with `SQLITE_BUSY` halfway), the file's clock bound as the last
//! parameter, JSON arrays read with `json_each`, and no notifications (processes poll).

use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{Sqlite, Transaction};

use super::{db, SqliteStore};
use crate::store::dialect::parts::*;
use crate::store::dialect::{Dialect, Waited};
use crate::store::StoreError;

/// Claims (run, token) of the JSON pairs `$1`.
macro_rules! pairs {
    () => {
        "SELECT json_extract(value, '$[0]') AS run, json_extract(value, '$[1]') AS token \
         FROM json_each($1)"
    };
}

/// The rows of the JSON array of objects `$json`, a column each key `$col` (its type
/// `$ty` unused: SQLite reads JSON's own).
macro_rules! rows {
    ($json:literal: $col0:ident $ty0:ident $(, $col:ident $ty:ident)*) => {
        concat!(
            "SELECT json_extract(value, '$.", stringify!($col0), "') AS ", stringify!($col0),
            $(", json_extract(value, '$.", stringify!($col), "') AS ", stringify!($col),)*
            " FROM json_each(", $json, ")"
        )
    };
}

/// Runs' ends of the JSON objects `$1` (`claim::ends_json`).
macro_rules! ends {
    () => {
        rows!("$1": run int8, token int8, status text, output text, error text, kind text)
    };
}

impl Dialect for SqliteStore {
    type Db = Sqlite;
    type One = Transaction<'static, Sqlite>;

    fn reads(&self) -> &SqlitePool {
        &self.inner.readers
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.write().await
    }

    async fn one(&self) -> Result<Self::One, StoreError> {
        self.write().await
    }

    async fn done(&self, one: Self::One) -> Result<(), StoreError> {
        one.commit().await.map_err(db)
    }

    fn error(&self, error: sqlx::Error) -> StoreError {
        db(error)
    }

    fn bound_now(&self) -> Option<i64> {
        Some(self.now())
    }

    // A group commit on the one writer (`group.rs`): writes made at the same time share
    // one transaction and one sync, and a signal and the wait that would miss it cannot
    // interleave.
    async fn wait_write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c Self, &'c mut SqliteConnection) -> Waited<'c, T> + Send + 'static,
    {
        let store = self.clone();
        self.grouped(move |conn| Box::pin(async move { write(&store, conn).await }))
            .await
    }

    const SAVE_STEP: &'static str = concat!(
        insert_step!(),
        "SELECT $1, $3, $4, $5, $6, $7, 1, $2, $9 - $8, $9",
        next_step_seq!(),
        " WHERE EXISTS (SELECT 1 FROM taskrunner_runs \
           WHERE id = $1 AND claim_token = $2 AND status = 'running')",
        upsert_step!()
    );

    // ----- waits (signals, children)
    const HOLDS_RUN: &'static str = holds_run!("$3", "");
    const WRITE_WAIT: &'static str = write_wait!("$8");
    const PARK_RUN: &'static str = park_run!("max");
    const SIGNALED_RUN: &'static str = signaled_run!("$2", "");
    const CHILD_OUTCOMES: &'static str = child_outcomes!("SELECT value FROM json_each($1)", "");

    const TAKE_NOTIFICATIONS: &'static str = take_notifications!("");
    const PRUNE_NOTIFICATIONS: &'static str = prune_notifications!("$2");

    const CREATE_SCHEDULE: &'static str = create_schedule!("$11");
    const DUE_SCHEDULES: &'static str = due_schedules!("SELECT value FROM json_each($2)");
    const NEXT_SCHEDULE_DUE: &'static str = next_schedule_due!("SELECT value FROM json_each($1)");
    const LOCK_SCHEDULE: &'static str = lock_schedule!("");
    // The one writer's transaction holds the file: no row lock needed.
    const LOCK_RUN: &'static str = "SELECT 1 FROM taskrunner_runs WHERE id = $1";
    const CANCEL_PENDING: &'static str = cancel_pending!("$2");
    const CANCEL_RUNNING: &'static str = "UPDATE taskrunner_runs SET cancel_requested = TRUE \
         WHERE id = $1 AND status = 'running'";
    const INSERT_SCHEDULED_RUN: &'static str = insert_scheduled_run!("$8");

    const NOTIFY_QUEUE: Option<&'static str> = None;

    // ----- the claim, leases and ends

    type Names = String;
    fn names(names: &[String]) -> String {
        serde_json::to_string(names).unwrap_or_default()
    }
    // The ready runs (the claim index) and the waiting runs whose deadline or wake time
    // passed (the waiting index), in claim order, each scan bounded by now. The indexes are
    // named: neither scan may ever walk the other kind of run.
    const CLAIM: &'static str = concat!(
        "UPDATE taskrunner_runs SET status = 'running', attempts = attempts + 1, \
         claim_token = claim_token + 1, lease_owner = $1, lease_expires_at = $6 + $2, \
         started_at = coalesce(started_at, $6), wait_kind = NULL, wait_signal = NULL, \
         wait_children = 0 \
         WHERE id IN (SELECT id FROM ( \
           SELECT * FROM (SELECT id, priority, scheduled_at FROM taskrunner_runs \
             INDEXED BY taskrunner_runs_claim \
             WHERE status = 'pending' AND wait_kind IS NULL AND queue = $3 \
               AND scheduled_at <= $6 AND name IN (SELECT value FROM json_each($4)) \
             ORDER BY priority DESC, scheduled_at, id LIMIT $5) \
           UNION ALL \
           SELECT * FROM (SELECT id, priority, scheduled_at FROM taskrunner_runs \
             INDEXED BY taskrunner_runs_waiting \
             WHERE status = 'pending' AND wait_kind IS NOT NULL AND queue = $3 \
               AND scheduled_at <= $6 AND name IN (SELECT value FROM json_each($4)) \
             ORDER BY scheduled_at LIMIT $5)) \
           ORDER BY priority DESC, scheduled_at, id LIMIT $5)",
        not_paused!("$3", "$6"),
        " RETURNING ",
        claimed_columns!()
    );
    // The one writer's transaction holds the file.
    const LOCK_QUEUE_CLAIMS: Option<&'static str> = None;
    const COUNT_RUNNING: &'static str = count_running!("$2");
    const PRUNE_CLAIM_TIMES: &'static str = prune_claim_times!("$3");
    const STAMP_CLAIMS: &'static str = stamp_claims!("$3");
    const RENEW_LEASES: &'static str =
        renew_leases!("taskrunner_runs NOT INDEXED", pairs!(), "$3", "");
    const RELEASE_UNHELD: &'static str = release_unheld!(pairs!(), "max");
    const RELEASE_CLAIMS: &'static str =
        release_claims!("taskrunner_runs NOT INDEXED", pairs!(), "max", "");
    const FINISH_RUNS: &'static str =
        finish_runs!("taskrunner_runs NOT INDEXED", ends!(), "$2", "");
    const FINISH_ONE: &'static str = Self::FINISH_RUNS;
    const ENDED_AS_SAID: &'static str = ended_as_said!(ends!());

    // ----- a queue's global budget
    // The candidates as the claim orders them, each index named, as in the claim.
    const PICK_BUDGETED: &'static str = concat!(
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
    const PRUNE_CHARGES: &'static str = prune_charges!("$3");
    const CHARGES_IN_WINDOW: &'static str = charges_in_window!("$3");
    const REFUSE_RUNS: &'static str = refuse_runs!(rows!("$3": run int8));
    const CLAIM_PICKED: &'static str = claim_picked!(
        "taskrunner_runs NOT INDEXED",
        rows!("$1": run int8, reserved int8)
    );
    const INSERT_CHARGES: &'static str =
        insert_charges!(rows!("$3": run int8, token int8, attempt int4, units int8));

    // ----- runs (manage, submit)

    const RESCUE: &'static str = rescue!("$2", "IS NOT");
    const PRUNE_BY_AGE: &'static str = prune_by_age!("$3");
    const RETRY_RUN: &'static str = retry_run!("$2");
    const TRIGGER_SCHEDULE: &'static str = trigger_schedule!("$2", "$2");
}

crate::store::dialect::capabilities_on!(SqliteStore);
