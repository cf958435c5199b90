//! [`SqliteStore`]: the durable store in one SQLite file, for runs that must survive a restart
//! of a single process (or of a few processes on one machine).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use super::types::now_ms;
use super::StoreError;

mod children;
mod clock;
mod dashboard;
mod dialect;
mod events;
mod group;
mod manage;
mod migrate;
mod plan;
mod submit;

use migrate::migrate;

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
/// **Its clock.** SQLite has no server clock, so leases and due times are not taken from
/// each process's clock (a process whose clock is ahead would take live runs and fire
/// schedules early): every time the store writes or compares is the kernel's time as it
/// stamps a one-byte write to the sidecar file `<path>-clock`, the same for every process
/// sharing the file whatever its own clock says. Where that file cannot be written, or the
/// file system keeps whole seconds only, the process's clock is used.
///
/// **Read-only files** are refused at open ([`StoreError::ReadOnly`]): a runner writes on
/// every claim, and a file it may only read would fail them all.
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
    /// Added to this process's clock (tests: a process whose clock is off).
    skew_ms: i64,
}

struct Inner {
    path: PathBuf,
    /// One connection: SQLite has one writer at a time anyway, and queueing here is cheaper
    /// than on the file lock.
    writer: SqlitePool,
    readers: SqlitePool,
    /// How to open another writing connection (the heartbeat's own, `detached`).
    options: SqliteConnectOptions,
    /// The sidecar file whose modification time is the store's clock (`clock.rs`).
    clock: Option<std::fs::File>,
    /// This process's readers of run streams.
    hub: Arc<super::events::Hub>,
    /// Waits' and signals' writes queued for a group commit (`group.rs`).
    group: group::Group,
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
            StoreError::Database(reason) => clock::read_only(reason, &path),
            other => other,
        })?;
        clock::check_writable(&writer, &path).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(base.clone().create_if_missing(false))
            .await
            .map_err(open_error)?;
        let clock = clock::open_clock(&path);
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer,
                readers,
                options: base,
                clock,
                hub: super::events::Hub::new(),
                group: group::Group::default(),
            }),
            skew_ms: 0,
        })
    }

    /// This store with its process's clock `skew_ms` milliseconds off (ahead if positive):
    /// for tests of clock skew between processes.
    #[doc(hidden)]
    pub fn with_clock_skew(mut self, skew_ms: i64) -> SqliteStore {
        self.skew_ms = skew_ms;
        self
    }

    /// This process's clock, as far as this store is concerned.
    pub(crate) fn process_now(&self) -> i64 {
        now_ms().saturating_add(self.skew_ms)
    }

    /// The same database through a writing connection of its own, made when first used
    /// (so on the runtime that first uses it): the heartbeat's, which must not queue behind
    /// the writer of a busy runtime.
    pub(crate) fn detached(&self) -> SqliteStore {
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(self.inner.options.clone());
        SqliteStore {
            inner: Arc::new(Inner {
                path: self.inner.path.clone(),
                writer,
                readers: self.inner.readers.clone(),
                options: self.inner.options.clone(),
                clock: self.inner.clock.as_ref().and_then(|c| c.try_clone().ok()),
                hub: Arc::clone(&self.inner.hub),
                group: group::Group::default(),
            }),
            skew_ms: self.skew_ms,
        }
    }

    /// The path the store was opened with.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        match self.inner.writer.begin_with("BEGIN IMMEDIATE").await {
            // sqlx counts the writer as still inside a transaction that SQLite has already
            // rolled back: a COMMIT that fails with a full disk or an I/O error rolls back by
            // itself, and the ROLLBACK that follows fails, so sqlx never lowers its count and
            // refuses every later `BEGIN IMMEDIATE`. Without this the store never wrote again
            // (claims failed forever once the disk had room again). The connection is
            // closed, and the pool opens a new one.
            Err(sqlx::Error::InvalidSavePointStatement) => {
                tracing::warn!("the store's writer lost track of a failed commit: reconnecting");
                if let Ok(stale) = self.inner.writer.acquire().await {
                    let _ = stale.close().await;
                }
                self.inner
                    .writer
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(db)
            }
            begun => begun.map_err(db),
        }
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.inner.readers)
            .await
            .map(drop)
            .map_err(db)
    }

    pub(crate) async fn close(&self) {
        self.inner.readers.close().await;
        self.inner.writer.close().await;
    }
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
