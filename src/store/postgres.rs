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

mod batch;
mod manage;
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
