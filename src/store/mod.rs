//! The durable store: runs that survive a restart, in an embedded SQLite file
//! ([`SqliteStore`], feature `sqlite`, on by default) or in PostgreSQL ([`PgStore`], feature
//! `postgres`), behind one API.
//!
//! Give a runner a store with [`TaskRunnerBuilder::store`](crate::TaskRunnerBuilder::store),
//! [`register`](crate::TaskRunnerBuilder::register) the [`TaskDef`](crate::TaskDef)s it
//! runs, and [`submit`](crate::TaskRunner::submit) runs: each is committed before `submit`
//! returns, claimed by a process that registered its name, run through that process's queues
//! (concurrency, retry, timeout, cancel, events), and its result stored for any process to
//! read by id.
//!
//! # What holds
//!
//! | | |
//! |---|---|
//! | commit | `submit` returns once the run is committed; from then on it survives any restart |
//! | order | runs are claimed by priority, then scheduled time, then submission order |
//! | at least once | a run whose process died (lease not renewed) is claimed again: a recovery (`RunInfo::recoveries`), not a retry; past [`TaskDef::max_recoveries`](crate::TaskDef::max_recoveries) it fails with "worker lost n times" |
//! | one clock | leases and schedule times are the database's clock on PostgreSQL, the SQLite file's on SQLite ([`SqliteStore`]): never one process's |
//! | under faults | lost answers (a write that committed) are found on retry; store reads of a step are retried with a bounded backoff; one bad row never blocks a batch of ends; the heartbeat renews exactly the claims its process holds, on a thread of its own |
//! | fencing | every write names the claim's token: a process that lost its lease cannot overwrite a newer claim's result |
//! | limits | a queue's `concurrency` holds in each process; its `global_concurrency` across all, counted inside the claim |
//! | cancel | the intent is stored: a pending run is cancelled at once, a running one is stopped by its process within a heartbeat (at once on PostgreSQL, through `NOTIFY`); the runs it spawned are cancelled with it, at any depth |
//! | waits | a run waiting for a signal, a wake time or its children is `Waiting` and holds no slot, no `global_concurrency` place and no lease; signals are kept until consumed, in order, each once, fenced by the claim |
//! | retention | finished runs are deleted in batches past [`Retention`]'s age (7 days) or count (100,000) |
//!
//! # Schema
//!
//! Migrations ship in the crate and run on open/connect; the version is kept in the table
//! `taskrunner_schema`, and a database migrated by a newer version is refused with
//! [`StoreError::SchemaTooNew`]. Runs live in `taskrunner_runs`; durable steps
//! ([`TaskContext::step`](crate::TaskContext::step)) in `taskrunner_steps` (deleted with their
//! run), undrained notifications of runs submitted with [`RunOptions::notify`] in
//! `taskrunner_notifications`, durable schedules
//! ([`TaskRunner::schedule_run`](crate::TaskRunner::schedule_run)) in `taskrunner_schedules`,
//! and what waiting runs recorded and the signals sent to them in `taskrunner_waits` and
//! `taskrunner_signals`.

mod error;
mod limits;
mod migrate;
mod row;
mod types;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
mod postgres;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
mod sqlite;

use std::time::Duration;

pub use dashboard::{QueueOverview, COUNT_CAP};
pub use error::StoreError;
#[doc(hidden)]
pub use limits::GlobalLimits;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PgStore;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;
pub use steps::{StepInfo, StepStatus};
#[doc(hidden)]
pub use types::{Claimed, Ending, Finish};
pub use types::{ParseRunIdError, RunFilter, RunId, RunInfo, RunOptions, RunStatus, WaitingFor};

pub(crate) use types::{duration_ms, CancelFound, Cancelled, Held, NewRun, Outcome};

#[cfg(feature = "postgres")]
pub(crate) use postgres::{CANCEL_CHANNEL, RUNS_CHANNEL};

/// Either durable store, as [`TaskRunnerBuilder::store`](crate::TaskRunnerBuilder::store)
/// takes it: made from a [`SqliteStore`] or a [`PgStore`] with `into()`.
#[derive(Clone, Debug)]
pub struct Store(Backend);

#[derive(Clone, Debug)]
pub(crate) enum Backend {
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteStore),
    #[cfg(feature = "postgres")]
    Pg(PgStore),
}

#[cfg(feature = "sqlite")]
impl From<SqliteStore> for Store {
    fn from(store: SqliteStore) -> Store {
        Store(Backend::Sqlite(store))
    }
}

#[cfg(feature = "postgres")]
impl From<PgStore> for Store {
    fn from(store: PgStore) -> Store {
        Store(Backend::Pg(store))
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match &$self.0 {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite($s) => $e,
            #[cfg(feature = "postgres")]
            Backend::Pg($s) => $e,
        }
    };
}

mod claim;
mod dashboard;
mod dialect;
pub(crate) mod events;
mod notifications;
mod schedules;
mod steps;
mod waits;

pub(crate) use schedules::{Fire, Fired, NewSchedule, ScheduleRow};
pub(crate) use types::to_time;
#[doc(hidden)]
pub use waits::WaitStep;
pub(crate) use waits::{JoinStep, SignalSent, Wake};

pub use notifications::RunNotification;
#[doc(hidden)]
pub use steps::StepWrite;

/// How long finished runs are kept, for [`TaskRunnerBuilder::retention`](crate::TaskRunnerBuilder::retention)
/// and [`Store::prune`].
///
/// # Default
///
/// Finished runs older than 7 days are deleted, and so are the oldest past the newest
/// 100,000; the runner checks every 10 minutes, deleting 1,000 rows a transaction so that
/// no write waits long behind it.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::store::Retention;
///
/// let retention = Retention::new()
///     .max_age(Duration::from_secs(24 * 3600))
///     .max_finished(10_000)
///     .every(Duration::from_secs(60));
/// # drop(retention);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub(crate) max_age: Duration,
    pub(crate) max_finished: u64,
    pub(crate) every: Duration,
    pub(crate) batch: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_finished: 100_000,
            every: Duration::from_secs(600),
            batch: 1000,
        }
    }
}

impl Retention {
    /// The defaults: 7 days, 100,000 runs, checked every 10 minutes.
    pub fn new() -> Self {
        Retention::default()
    }

    /// Finished runs older than this are deleted.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// Past this many finished runs, the oldest are deleted.
    pub fn max_finished(mut self, n: u64) -> Self {
        self.max_finished = n;
        self
    }

    /// How often a runner prunes (at least every second).
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every.max(Duration::from_secs(1));
        self
    }

    /// Rows deleted a transaction (default 1,000; at least 1).
    pub fn batch(mut self, n: u32) -> Self {
        self.batch = n.max(1);
        self
    }
}

impl Store {
    /// Deletes finished runs past `retention`'s age or count, in batches; returns how many.
    ///
    /// A runner with a store does this on its own every [`Retention::every`]; call it to
    /// prune now, or from a process that runs nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] if a delete fails; the batches before it stay deleted.
    pub async fn prune(&self, retention: &Retention) -> Result<u64, StoreError> {
        let age = duration_ms(retention.max_age);
        let batch = i64::from(retention.batch.max(1));
        let pruned = dispatch!(self, s => s.prune(age, retention.max_finished, batch).await)?;
        // Notifications nobody drained go at the same age as their runs.
        self.prune_notifications(age).await?;
        Ok(pruned)
    }

    /// Claims up to `max` pending runs of `names` in `queue` for `owner`, in claim order.
    #[doc(hidden)]
    pub async fn claim(
        &self,
        queue: &str,
        names: &[String],
        max: usize,
        owner: &str,
        lease: Duration,
        global: impl Into<GlobalLimits>,
    ) -> Result<Vec<Claimed>, StoreError> {
        let lease = duration_ms(lease);
        let global = global.into();
        dispatch!(self, s => s.claim(queue, names, max, owner, lease, global).await)
    }

    /// Writes runs' ends, each only if its token still holds the run; says which did.
    #[doc(hidden)]
    pub async fn finish(&self, batch: &[Finish]) -> Result<Vec<bool>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let batch: Vec<Finish> = batch.iter().map(Finish::cleaned).collect();
        dispatch!(self, s => s.finish(&batch).await)
    }

    /// Whether the store answers at all (a trivial read): tells a store that is down from
    /// a write that fails on its own.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }

    /// Puts runs whose lease expired back to pending (a recovery each), or cancels those
    /// whose cancel was asked.
    #[doc(hidden)]
    pub async fn rescue(&self) -> Result<u64, StoreError> {
        dispatch!(self, s => s.rescue(None).await)
    }

    /// [`rescue`](Self::rescue), sparing the runs leased to `owner`: a live process never
    /// takes its own runs (after an outage longer than its lease, its heartbeat renews
    /// them).
    pub(crate) async fn rescue_others(&self, owner: &str) -> Result<u64, StoreError> {
        dispatch!(self, s => s.rescue(Some(owner)).await)
    }

    /// The store's clock in ms since the epoch: the database's on PostgreSQL, the file's
    /// on SQLite (see `SqliteStore`): the one clock every lease and schedule decision uses.
    pub(crate) async fn now_ms(&self) -> Result<i64, StoreError> {
        match &self.0 {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(s) => Ok(s.now()),
            #[cfg(feature = "postgres")]
            Backend::Pg(s) => s.now_ms().await,
        }
    }

    /// The same database through connections of its own, made on the runtime that first
    /// uses them (the heartbeat's thread).
    pub(crate) fn detached(&self) -> Store {
        Store(match &self.0 {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(s) => Backend::Sqlite(s.detached()),
            #[cfg(feature = "postgres")]
            Backend::Pg(s) => Backend::Pg(s.detached()),
        })
    }

    pub(crate) async fn submit(&self, runs: &[NewRun]) -> Result<Vec<RunId>, StoreError> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        dispatch!(self, s => s.submit(runs).await)
    }

    /// Renews the leases of the claims `held`; with `release`, hands back the runs leased
    /// to `owner` that it does not hold. Returns the claims renewed, and how many runs were
    /// handed back.
    pub(crate) async fn heartbeat(
        &self,
        owner: &str,
        held: &[(RunId, i64)],
        lease: Duration,
        release: bool,
    ) -> Result<(Vec<Held>, u64), StoreError> {
        let lease = duration_ms(lease);
        dispatch!(self, s => s.heartbeat(owner, held, lease, release).await)
    }

    /// Counts `attempts` for `id` while `token` holds it; `error` (the attempt before's, if
    /// known) goes with the `retry` event the count appends, for the run's page.
    pub(crate) async fn record_attempt(
        &self,
        id: RunId,
        token: i64,
        attempts: i32,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let error = error.map(types::clean_text);
        dispatch!(self, s => s.record_attempt(id, token, attempts, error.as_deref()).await)
    }

    pub(crate) async fn release(&self, runs: &[(RunId, i64)]) -> Result<(), StoreError> {
        if runs.is_empty() {
            return Ok(());
        }
        dispatch!(self, s => s.release(runs).await)
    }

    /// Cancels run `id` and, if it was unfinished, the unfinished runs under it (its
    /// children, theirs, ...), all in one transaction.
    pub(crate) async fn cancel(&self, id: RunId) -> Result<Cancelled, StoreError> {
        dispatch!(self, s => s.cancel(id).await)
    }

    pub(crate) async fn next_due(
        &self,
        queue: &str,
        names: &[String],
    ) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.next_due(queue, names).await)
    }

    pub(crate) async fn run_info(&self, id: RunId) -> Result<Option<RunInfo>, StoreError> {
        let info = dispatch!(self, s => s.run_info(id).await)?;
        match info {
            Some(mut info) => {
                info.steps = self.steps(id).await?;
                Ok(Some(info))
            }
            None => Ok(None),
        }
    }

    pub(crate) async fn outcome(&self, id: RunId) -> Result<Option<Outcome>, StoreError> {
        dispatch!(self, s => s.outcome(id).await)
    }

    pub(crate) async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunInfo>, StoreError> {
        dispatch!(self, s => s.list_runs(filter).await)
    }

    /// This store with its process's clock `skew_ms` milliseconds off (ahead if
    /// positive): for tests of clock skew between processes.
    #[doc(hidden)]
    pub fn with_clock_skew(self, skew_ms: i64) -> Store {
        Store(match self.0 {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(s) => Backend::Sqlite(s.with_clock_skew(skew_ms)),
            #[cfg(feature = "postgres")]
            Backend::Pg(s) => Backend::Pg(s.with_clock_skew(skew_ms)),
        })
    }

    /// Closes the store's connections (a runner never does: the store may be shared).
    pub async fn close(&self) {
        dispatch!(self, s => s.close().await)
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn as_pg(&self) -> Option<&PgStore> {
        match &self.0 {
            Backend::Pg(pg) => Some(pg),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}
