//! [`PgStore`]: the durable store on PostgreSQL, shared by processes on several machines.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::Connection as _;

use super::error::{redact_url, scrub};
use super::types::{now_ms, NewRun, RunId};
use super::StoreError;

mod batch;
mod children;
mod dashboard;
mod dialect;
mod events;
#[cfg(test)]
mod lock_order_tests;
mod manage;
mod migrate;
mod plan;
mod submit;

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
    /// Added to this process's clock (tests: a process whose clock is off).
    skew_ms: i64,
}

struct Inner {
    pool: PgPool,
    /// How to connect again (the heartbeat's own pool, `detached`).
    options: PgConnectOptions,
    /// The URL with its password replaced by `***`.
    shown: String,
    /// The password, to scrub from error messages.
    secret: Option<String>,
    /// This process's readers of run streams.
    hub: Arc<super::events::Hub>,
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
    /// 10; each runner also keeps one more for `LISTEN`, and up to two of its heartbeat's own,
    /// made on the heartbeat's thread so that busy handlers cannot starve them).
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
            .connect_with(options.clone())
            .await
            .map_err(connect_error)?;
        let store = PgStore {
            inner: Arc::new(Inner {
                pool,
                options,
                shown,
                secret,
                hub: super::events::Hub::new(),
            }),
            skew_ms: 0,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// This store with its process's clock `skew_ms` milliseconds off (ahead if positive):
    /// for tests of clock skew between processes. The database's own clock is unaffected.
    #[doc(hidden)]
    pub fn with_clock_skew(mut self, skew_ms: i64) -> PgStore {
        self.skew_ms = skew_ms;
        self
    }

    /// The same database through a small pool of its own, connected when first used (so
    /// on the runtime that first uses it: the heartbeat's, whose connections must not be
    /// driven by a runtime that blocking handlers may starve).
    pub(crate) fn detached(&self) -> PgStore {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(self.inner.options.clone());
        PgStore {
            inner: Arc::new(Inner {
                pool,
                options: self.inner.options.clone(),
                shown: self.inner.shown.clone(),
                secret: self.inner.secret.clone(),
                hub: Arc::clone(&self.inner.hub),
            }),
            skew_ms: self.skew_ms,
        }
    }

    /// This process's clock, as far as this store is concerned.
    pub(crate) fn process_now(&self) -> i64 {
        now_ms().saturating_add(self.skew_ms)
    }

    fn db(&self, error: sqlx::Error) -> StoreError {
        StoreError::db(error, self.inner.secret.as_deref())
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.inner.pool)
            .await
            .map(drop)
            .map_err(|e| self.db(e))
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
}
