//! What the shared store layer needs from SQLite ([`Dialect`]): reads on the readers, every
//! write in a `BEGIN IMMEDIATE` transaction on the one writer (the file's lock taken first,
//! so no write fails with `SQLITE_BUSY` halfway), the file's clock bound as the last
//! parameter, JSON arrays read with `json_each`, and no notifications (processes poll).

use sqlx::sqlite::SqlitePool;
use sqlx::{Sqlite, Transaction};

use super::{db, SqliteStore};
use crate::store::dialect::Dialect;
use crate::store::schedules::schedule_columns;
use crate::store::StoreError;

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

    const SAVE_STEP: &'static str = "INSERT INTO taskrunner_steps (run_id, name, idx, status, \
           output, error, attempts, claim_token, started_at, finished_at) \
         SELECT $1, $3, $4, $5, $6, $7, 1, $2, $9 - $8, $9 \
         WHERE EXISTS (SELECT 1 FROM taskrunner_runs \
           WHERE id = $1 AND claim_token = $2 AND status = 'running') \
         ON CONFLICT (run_id, name, idx) DO UPDATE SET status = excluded.status, \
           output = excluded.output, error = excluded.error, \
           attempts = taskrunner_steps.attempts + 1, claim_token = excluded.claim_token, \
           finished_at = excluded.finished_at \
         WHERE taskrunner_steps.status <> 'completed'";

    const TAKE_NOTIFICATIONS: &'static str = "DELETE FROM taskrunner_notifications WHERE id IN \
           (SELECT id FROM taskrunner_notifications ORDER BY id LIMIT $1) \
         RETURNING id, run_id, call_id, name, queue, status, text, finished_at";
    const PRUNE_NOTIFICATIONS: &'static str =
        "DELETE FROM taskrunner_notifications WHERE finished_at < $2 - $1";

    const CREATE_SCHEDULE: &'static str = "INSERT INTO taskrunner_schedules (name, def_name, \
           queue, priority, max_attempts, input, spec, origin, status, next_fire_at, due_at, \
           created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $10, $11) \
         ON CONFLICT (name) DO UPDATE SET def_name = excluded.def_name, \
           queue = excluded.queue, priority = excluded.priority, \
           max_attempts = excluded.max_attempts, input = excluded.input, \
           spec = excluded.spec, origin = excluded.origin, status = 'active', \
           next_fire_at = excluded.next_fire_at, due_at = excluded.due_at, \
           last_fire_at = NULL, last_run_id = NULL, runs = 0, failures = 0, skipped = 0, \
           last_error = NULL, created_at = excluded.created_at \
         WHERE taskrunner_schedules.status = 'stopped'";
    const DUE_SCHEDULES: &'static str = concat!(
        "SELECT ",
        schedule_columns!(),
        " FROM taskrunner_schedules WHERE status = 'active' AND due_at <= $1 \
          AND def_name IN (SELECT value FROM json_each($2)) ORDER BY due_at"
    );
    const NEXT_SCHEDULE_DUE: &'static str = "SELECT min(due_at) FROM taskrunner_schedules \
         WHERE status = 'active' AND def_name IN (SELECT value FROM json_each($1))";
    const LOCK_SCHEDULE: &'static str = "SELECT status, next_fire_at, last_run_id, runs, \
         def_name, queue, priority, max_attempts, input FROM taskrunner_schedules \
         WHERE name = $1";
    const CANCEL_PENDING: &'static str = "UPDATE taskrunner_runs SET status = 'cancelled', \
         error = 'cancelled', error_kind = 'cancelled', finished_at = $2 \
         WHERE id = $1 AND status = 'pending'";
    const CANCEL_RUNNING: &'static str = "UPDATE taskrunner_runs SET cancel_requested = TRUE \
         WHERE id = $1 AND status = 'running'";
    const INSERT_SCHEDULED_RUN: &'static str = "INSERT INTO taskrunner_runs (name, queue, \
           priority, input, max_attempts, schedule, call_id, scheduled_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id";

    const NOTIFY_QUEUE: Option<&'static str> = None;
}

crate::store::steps::steps_on!(SqliteStore);
crate::store::notifications::notifications_on!(SqliteStore);
crate::store::schedules::sql::schedules_on!(SqliteStore);
