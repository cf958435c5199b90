//! What the shared store layer needs from PostgreSQL ([`Dialect`]): one pool, writes of one
//! statement in autocommit, rows locked where a transaction must hold them (`FOR UPDATE`,
//! `FOR SHARE`, `SKIP LOCKED`), the database's clock (`taskrunner_now_ms()`) read inside
//! the statements, JSON arrays read with `jsonb_array_elements_text`, and `NOTIFY` for new
//! runs and cancels.

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};

use super::PgStore;
use crate::store::dialect::Dialect;
use crate::store::schedules::schedule_columns;
use crate::store::StoreError;

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

    const SAVE_STEP: &'static str = "WITH r AS (SELECT id FROM taskrunner_runs \
           WHERE id = $1 AND claim_token = $2 AND status = 'running' FOR SHARE) \
         INSERT INTO taskrunner_steps (run_id, name, idx, status, output, error, attempts, \
           claim_token, started_at, finished_at) \
         SELECT r.id, $3, $4, $5, $6, $7, 1, $2, taskrunner_now_ms() - $8, taskrunner_now_ms() \
         FROM r \
         ON CONFLICT (run_id, name, idx) DO UPDATE SET status = excluded.status, \
           output = excluded.output, error = excluded.error, \
           attempts = taskrunner_steps.attempts + 1, claim_token = excluded.claim_token, \
           finished_at = excluded.finished_at \
         WHERE taskrunner_steps.status <> 'completed'";

    const TAKE_NOTIFICATIONS: &'static str = "DELETE FROM taskrunner_notifications WHERE id IN \
           (SELECT id FROM taskrunner_notifications ORDER BY id LIMIT $1 \
            FOR UPDATE SKIP LOCKED) \
         RETURNING id, run_id, call_id, name, queue, status, text, finished_at";
    const PRUNE_NOTIFICATIONS: &'static str =
        "DELETE FROM taskrunner_notifications WHERE finished_at < taskrunner_now_ms() - $1";

    const CREATE_SCHEDULE: &'static str = "INSERT INTO taskrunner_schedules (name, def_name, \
           queue, priority, max_attempts, input, spec, origin, status, next_fire_at, due_at, \
           created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $10, taskrunner_now_ms()) \
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
          AND def_name IN (SELECT jsonb_array_elements_text($2::jsonb)) ORDER BY due_at"
    );
    const NEXT_SCHEDULE_DUE: &'static str = "SELECT min(due_at) FROM taskrunner_schedules \
         WHERE status = 'active' \
         AND def_name IN (SELECT jsonb_array_elements_text($1::jsonb))";
    const LOCK_SCHEDULE: &'static str = "SELECT status, next_fire_at, last_run_id, runs, \
         def_name, queue, priority, max_attempts, input FROM taskrunner_schedules \
         WHERE name = $1 FOR UPDATE";
    const CANCEL_PENDING: &'static str = "UPDATE taskrunner_runs SET status = 'cancelled', \
         error = 'cancelled', error_kind = 'cancelled', finished_at = taskrunner_now_ms() \
         WHERE id = $1 AND status = 'pending'";
    // The channel is `CANCEL_CHANNEL` (checked by a test below).
    const CANCEL_RUNNING: &'static str = "WITH c AS (UPDATE taskrunner_runs \
           SET cancel_requested = TRUE WHERE id = $1 AND status = 'running' RETURNING id) \
         SELECT pg_notify('taskrunner_cancel', c.id::text) FROM c";
    const INSERT_SCHEDULED_RUN: &'static str = "INSERT INTO taskrunner_runs (name, queue, \
           priority, input, max_attempts, schedule, call_id, scheduled_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, taskrunner_now_ms(), taskrunner_now_ms()) \
         RETURNING id";

    // The channel is `RUNS_CHANNEL` (checked by a test below).
    const NOTIFY_QUEUE: Option<&'static str> = Some("SELECT pg_notify('taskrunner_runs', $1)");
}

crate::store::steps::steps_on!(PgStore);
crate::store::notifications::notifications_on!(PgStore);
crate::store::schedules::sql::schedules_on!(PgStore);

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
}
