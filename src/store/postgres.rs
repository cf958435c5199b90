//! [`PgStore`]: the durable store on PostgreSQL, shared by processes on several machines.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection as _, Row};

use super::error::{redact_url, scrub};
use super::row::{self, info_columns};
use super::types::{
    now_ms, CancelFound, Claimed, Finish, Held, NewRun, Outcome, RunFilter, RunId, RunInfo,
    RunStatus,
};
use super::StoreError;

mod notifications;
mod schedules;
mod steps;

/// The schema versions this build ships, oldest first; the version is the position + 1.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/0001_runs.sql"),
    include_str!("migrations/postgres/0002_steps.sql"),
    include_str!("migrations/postgres/0003_notifications.sql"),
    include_str!("migrations/postgres/0004_schedules.sql"),
];

/// The channel a submit notifies, with the queue's name as payload.
pub(crate) const RUNS_CHANNEL: &str = "taskrunner_runs";
/// The channel a cancel of a running run notifies, with the run's id as payload.
pub(crate) const CANCEL_CHANNEL: &str = "taskrunner_cancel";

/// Advisory lock class (first key) for the claims of a queue with a global limit, and for
/// migrations.
const LOCK_CLASS: i32 = 0x7461_736b; // "task"

/// A durable store on PostgreSQL: several processes, on several machines, share its runs.
///
/// Runs are claimed with `FOR UPDATE SKIP LOCKED` on an index in claim order (priority,
/// scheduled time, id), so claimers never wait on each other; a queue's
/// [`global_concurrency`](crate::QueueConfig::global_concurrency) is counted inside the claim
/// transaction under a per-queue advisory lock. New runs and cancels are announced with
/// `NOTIFY`, and every process also polls, so a notification lost while a listener
/// reconnects delays a run but never loses it. Times come from the database's clock.
///
/// The URL's password never appears in an error, a log line or this type's `Debug` output.
/// Cheap to clone: clones share the connection pool.
///
/// ```no_run
/// use taskrunner::store::PgStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PgStore::connect("postgres://app:secret@127.0.0.1/app").await?;
/// assert_eq!(format!("{store:?}"), r#"PgStore { url: "postgres://app:***@127.0.0.1/app", .. }"#);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    /// The URL with its password replaced by `***`.
    shown: String,
    /// The password, to scrub from error messages.
    secret: Option<String>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.inner.shown)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the PostgreSQL database at `url` and brings its schema up to date (under
    /// an advisory lock, so processes starting together migrate once).
    ///
    /// # Errors
    ///
    /// [`StoreError::BadUrl`] for a URL that does not parse, [`StoreError::Connect`] for a
    /// server that cannot be reached or refuses the login, [`StoreError::SchemaTooNew`] if a
    /// newer version of this crate migrated the database.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        PgStore::connect_with_pool_size(url, 10).await
    }

    /// Like [`connect`](Self::connect), with at most `max_connections` connections (default
    /// 10; each runner also keeps one more for `LISTEN`).
    pub async fn connect_with_pool_size(
        url: &str,
        max_connections: u32,
    ) -> Result<PgStore, StoreError> {
        let (shown, secret) = redact_url(url);
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::BadUrl {
                url: shown,
                reason: "it does not start with postgres:// or postgresql://".into(),
            });
        }
        let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl {
            url: shown.clone(),
            reason: scrub(e.to_string(), secret.as_deref()),
        })?;
        let connect_error = |e: sqlx::Error| StoreError::Connect {
            url: shown.clone(),
            reason: scrub(e.to_string(), secret.as_deref()),
        };
        // One direct attempt first: a refused or unreachable server fails now, not after the
        // pool's retries.
        let probe = tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::PgConnection::connect_with(&options),
        )
        .await
        .map_err(|_| StoreError::Connect {
            url: shown.clone(),
            reason: "no answer within 10 s".into(),
        })?
        .map_err(connect_error)?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        let store = PgStore {
            inner: Arc::new(Inner {
                pool,
                shown,
                secret,
            }),
        };
        store.migrate().await?;
        Ok(store)
    }

    fn db(&self, error: sqlx::Error) -> StoreError {
        StoreError::db(error, self.inner.secret.as_deref())
    }

    pub(crate) async fn close(&self) {
        self.inner.pool.close().await;
    }

    pub(crate) async fn listener(&self) -> Result<PgListener, StoreError> {
        let mut listener = PgListener::connect_with(&self.inner.pool)
            .await
            .map_err(|e| self.db(e))?;
        listener
            .listen_all([RUNS_CHANNEL, CANCEL_CHANNEL])
            .await
            .map_err(|e| self.db(e))?;
        Ok(listener)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let db = |e| self.db(e);
        let mut tx = self.inner.pool.begin().await.map_err(db)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
            .bind(LOCK_CLASS)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS taskrunner_schema (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let found: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM taskrunner_schema")
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let found = found.unwrap_or(0);
        let supported = MIGRATIONS.len() as i64;
        if found > supported {
            return Err(StoreError::SchemaTooNew { found, supported });
        }
        for sql in &MIGRATIONS[found as usize..] {
            sqlx::raw_sql(*sql).execute(&mut *tx).await.map_err(db)?;
        }
        if found < supported {
            sqlx::query("DELETE FROM taskrunner_schema")
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            sqlx::query("INSERT INTO taskrunner_schema (version) VALUES ($1)")
                .bind(supported)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    pub(crate) async fn submit(&self, runs: &[NewRun]) -> Result<Vec<RunId>, StoreError> {
        if let [run] = runs {
            if let Some(id) = self.submit_one(run).await? {
                return Ok(vec![id]);
            }
        }
        self.submit_batch(runs).await
    }

    /// One run in one statement (one round trip, its own transaction), notifying its queue;
    /// `None` if its dedup key is held, for the batch path to resolve.
    async fn submit_one(&self, run: &NewRun) -> Result<Option<RunId>, StoreError> {
        let id: Option<i64> = sqlx::query_scalar(
            "WITH ins AS ( \
               INSERT INTO taskrunner_runs (name, queue, priority, input, max_attempts, call_id, \
                 dedup_key, notify, scheduled_at, created_at) \
               SELECT $1, $2, $3, $4, $5, $6, $7, $8, t.now + $9, t.now \
               FROM (SELECT taskrunner_now_ms() AS now) AS t \
               ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL \
                 AND status IN ('pending', 'running') DO NOTHING \
               RETURNING id, queue) \
             SELECT id FROM ins, LATERAL (SELECT pg_notify($10, ins.queue)) AS n",
        )
        .bind(&run.name)
        .bind(&run.queue)
        .bind(run.priority)
        .bind(&run.input)
        .bind(run.max_attempts)
        .bind(&run.call_id)
        .bind(&run.dedup_key)
        .bind(run.notify)
        .bind(run.delay_ms)
        .bind(RUNS_CHANNEL)
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        Ok(id.map(RunId::from_i64))
    }

    async fn submit_batch(&self, runs: &[NewRun]) -> Result<Vec<RunId>, StoreError> {
        let db = |e| self.db(e);
        let mut tx = self.inner.pool.begin().await.map_err(db)?;
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "SELECT nextval('taskrunner_runs_id_seq') FROM generate_series(1, $1)",
        )
        .bind(runs.len() as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        ids.sort_unstable();
        let column = |f: &dyn Fn(&NewRun) -> Option<String>| runs.iter().map(f).collect::<Vec<_>>();
        let inserted: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO taskrunner_runs (id, name, queue, priority, input, max_attempts, call_id, \
               dedup_key, notify, scheduled_at, created_at) \
             SELECT u.id, u.name, u.queue, u.priority, u.input, u.max_attempts, u.call_id, \
               u.dedup_key, u.notify, t.now + u.delay, t.now \
             FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::int4[], \
               $7::text[], $8::text[], $9::bool[], $10::int8[]) \
               AS u(id, name, queue, priority, input, max_attempts, call_id, dedup_key, notify, delay), \
               (SELECT taskrunner_now_ms() AS now) AS t \
             ORDER BY u.id \
             ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL \
               AND status IN ('pending', 'running') DO NOTHING \
             RETURNING id",
        )
        .bind(&ids)
        .bind(runs.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.queue.clone()).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.priority).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.input.clone()).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.max_attempts).collect::<Vec<_>>())
        .bind(column(&|r| r.call_id.clone()))
        .bind(column(&|r| r.dedup_key.clone()))
        .bind(runs.iter().map(|r| r.notify).collect::<Vec<_>>())
        .bind(runs.iter().map(|r| r.delay_ms).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let mut result: Vec<RunId> = ids.iter().map(|id| RunId::from_i64(*id)).collect();
        if inserted.len() < runs.len() {
            // Deduplicated: hand back the unfinished run holding each key.
            let inserted: HashSet<i64> = inserted.into_iter().collect();
            let keys: Vec<String> = runs
                .iter()
                .zip(&ids)
                .filter(|(_, id)| !inserted.contains(id))
                .filter_map(|(run, _)| run.dedup_key.clone())
                .collect();
            let existing: Vec<(i64, String)> = sqlx::query_as(
                "SELECT id, dedup_key FROM taskrunner_runs WHERE dedup_key = ANY($1) \
                 AND status IN ('pending', 'running')",
            )
            .bind(&keys)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            for (i, run) in runs.iter().enumerate() {
                if inserted.contains(&ids[i]) {
                    continue;
                }
                let found = existing
                    .iter()
                    .find(|(_, key)| Some(key) == run.dedup_key.as_ref());
                match found {
                    Some((id, _)) => result[i] = RunId::from_i64(*id),
                    None => {
                        return Err(StoreError::Database(format!(
                            "the run holding dedup key `{}` finished while this submit ran: \
                             submit again",
                            run.dedup_key.as_deref().unwrap_or_default()
                        )))
                    }
                }
            }
        }
        let mut queues: Vec<&str> = runs.iter().map(|r| r.queue.as_str()).collect();
        queues.sort_unstable();
        queues.dedup();
        sqlx::query("SELECT pg_notify($1, q) FROM UNNEST($2::text[]) AS q")
            .bind(RUNS_CHANNEL)
            .bind(&queues)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(result)
    }

    pub(crate) async fn claim(
        &self,
        queue: &str,
        names: &[String],
        max: usize,
        owner: &str,
        lease_ms: i64,
        global: Option<usize>,
    ) -> Result<Vec<Claimed>, StoreError> {
        let db = |e| self.db(e);
        let claim = sqlx::query(
            "WITH picked AS ( \
               SELECT id FROM taskrunner_runs \
               WHERE status = 'pending' AND queue = $1 AND scheduled_at <= taskrunner_now_ms() \
                 AND name = ANY($2) \
               ORDER BY priority DESC, scheduled_at, id \
               LIMIT $3 FOR UPDATE SKIP LOCKED) \
             UPDATE taskrunner_runs r SET status = 'running', attempts = r.attempts + 1, \
               claim_token = r.claim_token + 1, lease_owner = $4, \
               lease_expires_at = taskrunner_now_ms() + $5, \
               started_at = coalesce(r.started_at, taskrunner_now_ms()) \
             FROM picked WHERE r.id = picked.id \
             RETURNING r.id, r.name, r.priority, r.input, r.attempts, r.max_attempts, \
               r.claim_token, r.call_id, r.scheduled_at",
        );
        let rows = match global {
            None => claim
                .bind(queue)
                .bind(names)
                .bind(max as i64)
                .bind(owner)
                .bind(lease_ms)
                .fetch_all(&self.inner.pool)
                .await
                .map_err(db)?,
            Some(global) => {
                let mut tx = self.inner.pool.begin().await.map_err(db)?;
                sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                    .bind(LOCK_CLASS)
                    .bind(queue)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                let running: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM taskrunner_runs WHERE status = 'running' \
                     AND queue = $1 AND lease_expires_at > taskrunner_now_ms()",
                )
                .bind(queue)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
                let limit = (max as i64).min(global as i64 - running);
                if limit <= 0 {
                    tx.rollback().await.map_err(db)?;
                    return Ok(Vec::new());
                }
                let rows = claim
                    .bind(queue)
                    .bind(names)
                    .bind(limit)
                    .bind(owner)
                    .bind(lease_ms)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?;
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

    pub(crate) async fn heartbeat(
        &self,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Vec<Held>, StoreError> {
        let rows = sqlx::query(
            "UPDATE taskrunner_runs SET lease_expires_at = taskrunner_now_ms() + $1 \
             WHERE status = 'running' AND lease_owner = $2 \
             RETURNING id, claim_token, cancel_requested",
        )
        .bind(lease_ms)
        .bind(owner)
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        rows.iter()
            .map(|row| {
                Ok(Held {
                    id: RunId::from_i64(row.try_get("id")?),
                    token: row.try_get("claim_token")?,
                    cancel_requested: row.try_get("cancel_requested")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| self.db(e))
    }

    pub(crate) async fn finish(&self, batch: &[Finish]) -> Result<Vec<bool>, StoreError> {
        let applied: Vec<i64> = sqlx::query_scalar(
            "UPDATE taskrunner_runs r SET status = f.status, output = f.output, error = f.error, \
               error_kind = f.kind, finished_at = taskrunner_now_ms(), lease_owner = NULL, \
               lease_expires_at = NULL \
             FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[]) \
               AS f(id, token, status, output, error, kind) \
             WHERE r.id = f.id AND r.claim_token = f.token AND r.status = 'running' \
             RETURNING r.id",
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
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE taskrunner_runs SET attempts = $1 \
             WHERE id = $2 AND claim_token = $3 AND status = 'running'",
        )
        .bind(attempts)
        .bind(id.as_i64())
        .bind(token)
        .execute(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
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

    pub(crate) async fn rescue(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE taskrunner_runs SET \
               status = CASE WHEN cancel_requested THEN 'cancelled' \
                 WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END, \
               error = CASE WHEN cancel_requested THEN 'cancelled' \
                 WHEN attempts >= max_attempts THEN \
                   'worker lost: the process running it stopped renewing its lease, and it has no retry left' \
                 ELSE error END, \
               error_kind = CASE WHEN cancel_requested THEN 'cancelled' \
                 WHEN attempts >= max_attempts THEN 'worker_lost' ELSE error_kind END, \
               finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts \
                 THEN taskrunner_now_ms() ELSE NULL END, \
               lease_owner = NULL, lease_expires_at = NULL \
             WHERE status = 'running' AND lease_expires_at <= taskrunner_now_ms()",
        )
        .execute(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn cancel(&self, id: RunId) -> Result<CancelFound, StoreError> {
        let db = |e| self.db(e);
        let mut tx = self.inner.pool.begin().await.map_err(db)?;
        let pending = sqlx::query(
            "UPDATE taskrunner_runs SET status = 'cancelled', error = 'cancelled', \
             error_kind = 'cancelled', finished_at = taskrunner_now_ms() \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id.as_i64())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let found = if pending.rows_affected() == 1 {
            CancelFound::Cancelled
        } else {
            let running = sqlx::query(
                "UPDATE taskrunner_runs SET cancel_requested = TRUE \
                 WHERE id = $1 AND status = 'running'",
            )
            .bind(id.as_i64())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if running.rows_affected() == 1 {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CANCEL_CHANNEL)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                CancelFound::Requested
            } else {
                CancelFound::Nothing
            }
        };
        tx.commit().await.map_err(db)?;
        Ok(found)
    }

    pub(crate) async fn prune(
        &self,
        max_age_ms: i64,
        keep: u64,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let db = |e| self.db(e);
        let mut total = 0;
        loop {
            let by_age = sqlx::query(
                "DELETE FROM taskrunner_runs WHERE id IN (SELECT id FROM taskrunner_runs \
                 WHERE finished_at IS NOT NULL AND finished_at < taskrunner_now_ms() - $1 \
                 LIMIT $2)",
            )
            .bind(max_age_ms)
            .bind(batch)
            .execute(&self.inner.pool)
            .await
            .map_err(db)?
            .rows_affected();
            let by_count = sqlx::query(
                "DELETE FROM taskrunner_runs WHERE id IN (SELECT id FROM taskrunner_runs \
                 WHERE finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC \
                 LIMIT $1 OFFSET $2)",
            )
            .bind(batch)
            .bind(i64::try_from(keep).unwrap_or(i64::MAX))
            .execute(&self.inner.pool)
            .await
            .map_err(db)?
            .rows_affected();
            total += by_age + by_count;
            if by_age < batch as u64 && by_count < batch as u64 {
                return Ok(total);
            }
        }
    }

    /// How long until the next delayed run of `names` in `queue` is due, in milliseconds.
    pub(crate) async fn next_due(
        &self,
        queue: &str,
        names: &[String],
    ) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT min(scheduled_at) - taskrunner_now_ms() FROM taskrunner_runs \
             WHERE status = 'pending' AND queue = $1 AND scheduled_at > taskrunner_now_ms() \
               AND name = ANY($2)",
        )
        .bind(queue)
        .bind(names)
        .fetch_one(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))
    }

    pub(crate) async fn run_info(&self, id: RunId) -> Result<Option<RunInfo>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            info_columns!(),
            " FROM taskrunner_runs WHERE id = $1"
        ))
        .bind(id.as_i64())
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        let now = now_ms();
        row.map(|row| row::info(&row, now))
            .transpose()
            .map_err(|e| self.db(e))
    }

    pub(crate) async fn outcome(&self, id: RunId) -> Result<Option<Outcome>, StoreError> {
        let row = sqlx::query(
            "SELECT status, output, error, error_kind FROM taskrunner_runs WHERE id = $1",
        )
        .bind(id.as_i64())
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        row.map(|row| row::outcome(&row))
            .transpose()
            .map_err(|e| self.db(e))
    }

    pub(crate) async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunInfo>, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(concat!(
            "SELECT ",
            info_columns!(),
            " FROM taskrunner_runs WHERE ($1::text IS NULL OR status = $1) \
              AND ($2::text IS NULL OR name = $2) AND ($3::text IS NULL OR queue = $3) \
              AND (NOT $4 OR scheduled_at > $5) AND (NOT $6 OR scheduled_at <= $5) \
              ORDER BY id DESC LIMIT $7"
        ))
        .bind(filter.status.map(RunStatus::as_db))
        .bind(&filter.name)
        .bind(&filter.queue)
        .bind(filter.status == Some(RunStatus::Delayed))
        .bind(now)
        .bind(filter.status == Some(RunStatus::Pending))
        .bind(i64::from(filter.limit))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| self.db(e))?;
        rows.iter()
            .map(|row| row::info(row, now))
            .collect::<Result<_, _>>()
            .map_err(|e| self.db(e))
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
    })
}
