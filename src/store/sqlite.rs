//! [`SqliteStore`]: the durable store in one SQLite file, for runs that must survive a restart
//! of a single process (or of a few processes on one machine).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::row::{self, info_columns};
use super::types::{
    now_ms, CancelFound, Claimed, Finish, Held, NewRun, Outcome, RunFilter, RunId, RunInfo,
    RunStatus,
};
use super::StoreError;

mod manage;
mod notifications;
mod schedules;
mod steps;

/// The schema versions this build ships, oldest first; the version is the position + 1.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/sqlite/0001_runs.sql"),
    include_str!("migrations/sqlite/0002_steps.sql"),
    include_str!("migrations/sqlite/0003_notifications.sql"),
    include_str!("migrations/sqlite/0004_schedules.sql"),
];

/// How long a writer waits for the file's write lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A durable store in a SQLite file: the embedded default, nothing to install or run.
///
/// The file is opened in WAL mode with `synchronous = FULL` (a committed run survives a
/// power cut), and every transaction that writes begins with `BEGIN IMMEDIATE`, on one
/// writing connection, so writers queue on the lock instead of failing with `SQLITE_BUSY`.
/// Reads (`run_info`, `list_runs`, handles polling) use separate connections and never wait
/// for a writer. Several processes may share one file (they wait up to 10 s for the lock),
/// but for several machines use [`PgStore`](crate::store::PgStore).
///
/// Cheap to clone: clones share the connections.
///
/// ```
/// use taskrunner::store::SqliteStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("taskrunner-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let store = SqliteStore::open(dir.join("runs.db")).await?;   // created and migrated
/// assert_eq!(store.path(), dir.join("runs.db"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// One connection: SQLite has one writer at a time anyway, and queueing here is cheaper
    /// than on the file lock.
    writer: SqlitePool,
    readers: SqlitePool,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn db(error: sqlx::Error) -> StoreError {
    StoreError::db(error, None)
}

impl SqliteStore {
    /// Opens the SQLite database at `path`, creating it if missing, and brings its schema up
    /// to date. The path is used as given: it is never parsed as a URL.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotADatabase`] for an existing file that is not a SQLite database (it is
    /// not modified), [`StoreError::Open`] if the file cannot be opened or created,
    /// [`StoreError::SchemaTooNew`] if a newer version of this crate migrated it.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        check_header(&path).await?;
        let open_error = |e: sqlx::Error| match &e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some("26") => {
                StoreError::NotADatabase { path: path.clone() }
            }
            _ => StoreError::Open {
                path: path.clone(),
                reason: e.to_string(),
            },
        };
        let base = SqliteConnectOptions::new()
            .filename(&path)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full)
            .pragma("temp_store", "memory");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal),
            )
            .await
            .map_err(open_error)?;
        migrate(&writer).await.map_err(|e| match e {
            StoreError::Database(reason) if reason.contains("not a database") => {
                StoreError::NotADatabase { path: path.clone() }
            }
            other => other,
        })?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(base.create_if_missing(false))
            .await
            .map_err(open_error)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer,
                readers,
            }),
        })
    }

    /// The path the store was opened with.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.inner
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db)
    }

    pub(crate) async fn close(&self) {
        self.inner.readers.close().await;
        self.inner.writer.close().await;
    }

    pub(crate) async fn submit(&self, runs: &[NewRun]) -> Result<Vec<RunId>, StoreError> {
        let mut tx = self.write().await?;
        let now = now_ms();
        let mut ids = Vec::with_capacity(runs.len());
        for run in runs {
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO taskrunner_runs (name, queue, priority, input, max_attempts, call_id, \
                 dedup_key, notify, scheduled_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL \
                 AND status IN ('pending', 'running') DO NOTHING RETURNING id",
            )
            .bind(&run.name)
            .bind(&run.queue)
            .bind(run.priority)
            .bind(&run.input)
            .bind(run.max_attempts)
            .bind(&run.call_id)
            .bind(&run.dedup_key)
            .bind(run.notify)
            .bind(now.saturating_add(run.delay_ms))
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            let id = match inserted {
                Some(id) => id,
                None => sqlx::query_scalar(
                    "SELECT id FROM taskrunner_runs WHERE dedup_key = $1 \
                     AND status IN ('pending', 'running')",
                )
                .bind(&run.dedup_key)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?,
            };
            ids.push(RunId::from_i64(id));
        }
        tx.commit().await.map_err(db)?;
        Ok(ids)
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
        let names = serde_json::to_string(names).unwrap_or_default();
        let mut tx = self.write().await?;
        let now = now_ms();
        let mut limit = max as i64;
        if let Some(global) = global {
            let running: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM taskrunner_runs \
                 WHERE status = 'running' AND queue = $1 AND lease_expires_at > $2",
            )
            .bind(queue)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            limit = limit.min(global as i64 - running);
        }
        if limit <= 0 {
            tx.rollback().await.map_err(db)?;
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "UPDATE taskrunner_runs SET status = 'running', attempts = attempts + 1, \
             claim_token = claim_token + 1, lease_owner = $1, lease_expires_at = $2, \
             started_at = coalesce(started_at, $3) \
             WHERE id IN (SELECT id FROM taskrunner_runs WHERE status = 'pending' AND queue = $4 \
               AND scheduled_at <= $3 AND name IN (SELECT value FROM json_each($5)) \
               ORDER BY priority DESC, scheduled_at, id LIMIT $6) \
             RETURNING id, name, priority, input, attempts, max_attempts, claim_token, call_id, \
               scheduled_at",
        )
        .bind(owner)
        .bind(now.saturating_add(lease_ms))
        .bind(now)
        .bind(queue)
        .bind(&names)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter()
            .map(claimed)
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    pub(crate) async fn heartbeat(
        &self,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Vec<Held>, StoreError> {
        let mut tx = self.write().await?;
        let rows = sqlx::query(
            "UPDATE taskrunner_runs SET lease_expires_at = $1 \
             WHERE status = 'running' AND lease_owner = $2 \
             RETURNING id, claim_token, cancel_requested",
        )
        .bind(now_ms().saturating_add(lease_ms))
        .bind(owner)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(Held {
                    id: RunId::from_i64(row.try_get("id")?),
                    token: row.try_get("claim_token")?,
                    cancel_requested: row.try_get("cancel_requested")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db)
    }

    pub(crate) async fn finish(&self, batch: &[Finish]) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.write().await?;
        let now = now_ms();
        let mut applied = Vec::with_capacity(batch.len());
        for finish in batch {
            let done = sqlx::query(
                "UPDATE taskrunner_runs SET status = $1, output = $2, error = $3, error_kind = $4, \
                 finished_at = $5, lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id = $6 AND claim_token = $7 AND status = 'running'",
            )
            .bind(finish.ending.status())
            .bind(&finish.output)
            .bind(&finish.error)
            .bind(finish.ending.kind())
            .bind(now)
            .bind(finish.id.as_i64())
            .bind(finish.token)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            applied.push(done.rows_affected() == 1);
        }
        tx.commit().await.map_err(db)?;
        Ok(applied)
    }

    pub(crate) async fn record_attempt(
        &self,
        id: RunId,
        token: i64,
        attempts: i32,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE taskrunner_runs SET attempts = $1 \
             WHERE id = $2 AND claim_token = $3 AND status = 'running'",
        )
        .bind(attempts)
        .bind(id.as_i64())
        .bind(token)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn release(&self, runs: &[(RunId, i64)]) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for (id, token) in runs {
            sqlx::query(
                "UPDATE taskrunner_runs SET status = 'pending', lease_owner = NULL, \
                 lease_expires_at = NULL, attempts = max(attempts - 1, 0) \
                 WHERE id = $1 AND claim_token = $2 AND status = 'running'",
            )
            .bind(id.as_i64())
            .bind(token)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }
}

fn claimed(row: &sqlx::sqlite::SqliteRow) -> Result<Claimed, sqlx::Error> {
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

/// Refuses, without writing to it, an existing non-empty file that is not a SQLite database.
async fn check_header(path: &Path) -> Result<(), StoreError> {
    use tokio::io::AsyncReadExt as _;
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    let mut header = Vec::with_capacity(16);
    (&mut file)
        .take(16)
        .read_to_end(&mut header)
        .await
        .map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if header.is_empty() || header == b"SQLite format 3\0" {
        Ok(())
    } else {
        Err(StoreError::NotADatabase {
            path: path.to_path_buf(),
        })
    }
}

async fn migrate(writer: &SqlitePool) -> Result<(), StoreError> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
    sqlx::raw_sql("CREATE TABLE IF NOT EXISTS taskrunner_schema (version INTEGER NOT NULL)")
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
