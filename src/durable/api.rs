//! The durable API on [`TaskRunnerBuilder`] (store, register, lease) and on [`TaskRunner`]
//! (submit, run_info, cancel_run, list_runs).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::registered::{Def, Registered};
use super::{Durable, RunHandle, Settings};
use crate::store::{
    duration_ms, NewRun, Retention, RunFilter, RunId, RunInfo, RunOptions, Store, StoreError,
};
use crate::{TaskContext, TaskDef, TaskRunner, TaskRunnerBuilder};

// ===== impl TaskRunnerBuilder =====

impl TaskRunnerBuilder {
    /// Gives the runner a durable store: runs [`submit`](TaskRunner::submit)ted to it survive
    /// restarts, and this process runs those of the definitions it
    /// [`register`](Self::register)s. Takes a [`SqliteStore`](crate::store::SqliteStore) or a
    /// [`PgStore`](crate::store::PgStore).
    ///
    /// A runner with a store must be built inside a tokio runtime (it starts its claim loops).
    pub fn store(self, store: impl Into<Store>) -> Self {
        let store = store.into();
        self.with_layer(|durable: &mut Settings| durable.store = Some(store))
    }

    /// Makes this process run the durable runs of `def`, in `def`'s queue (which must be
    /// declared). A process that only submits registers nothing.
    ///
    /// The input must deserialize from JSON and the output serialize to it (serde); the error
    /// is stored as its `Display`. A run whose stored input no longer deserializes fails with
    /// that message; the worker goes on.
    pub fn register<H, I, Fut, T, E>(self, def: &TaskDef<H>) -> Self
    where
        H: Fn(TaskContext, I) -> Fut + Send + Sync + 'static,
        I: DeserializeOwned + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Serialize + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let def: Arc<dyn Registered> = Arc::new(Def::<H, I, Fut, T, E>::new(def.clone()));
        self.with_layer(|durable: &mut Settings| durable.defs.push(def))
    }

    /// How long a claimed run stays claimed without a heartbeat (default 30 s). Heartbeats
    /// come every third of it; a process that stops sending them (it crashed, or hangs) has
    /// its runs claimed again by others once it passes. Shorter recovers sooner, at the cost
    /// of more writes.
    pub fn lease(self, lease: Duration) -> Self {
        self.with_layer(|durable: &mut Settings| {
            durable.lease = lease.max(Duration::from_millis(60))
        })
    }

    /// How often the runner looks in the store for work it was not told about (default 1 s):
    /// runs submitted by other processes on SQLite, or whose notification was lost on
    /// PostgreSQL. Also the longest a [`RunHandle`] waits between two polls.
    pub fn poll_interval(self, every: Duration) -> Self {
        self.with_layer(|durable: &mut Settings| durable.poll = every.max(Duration::from_millis(1)))
    }

    /// How many runs a queue claims beyond its free slots; they wait in this process,
    /// leased, for a slot. Claiming ahead amortises the store's round trips over more runs
    /// when runs are short (a backlog of quick runs drains several times faster), at the
    /// cost of other processes not getting those runs meanwhile. Runs claimed ahead count
    /// against the queue's [`global_concurrency`](crate::QueueConfig::global_concurrency),
    /// and are handed back at shutdown.
    ///
    /// Without it the read-ahead is adaptive: a queue claims as many extra runs as this
    /// process is expected to start within 25 ms at the rate it ends them (hundreds for
    /// runs of microseconds, none for runs of seconds), and the heartbeat hands back to the
    /// store any such run that has not started half a heartbeat after its claim (a heartbeat
    /// is a third of the [`lease`](Self::lease)), so no run waits here past one and a half
    /// heartbeats while another process could run it. A queue with a global limit (concurrency, rate or budget) claims nothing
    /// ahead unless this is set. `claim_ahead(0)` claims only free slots; a fixed `n` is
    /// never handed back before shutdown.
    ///
    /// ```
    /// use taskrunner::store::SqliteStore;
    /// use taskrunner::TaskRunner;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("taskrunner-ahead-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let runner = TaskRunner::builder()
    ///     .store(SqliteStore::open(dir.join("runs.db")).await?)
    ///     .claim_ahead(0) // each process claims only what it can start now
    ///     .build()?;
    /// # runner.shutdown().await;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn claim_ahead(self, n: usize) -> Self {
        self.with_layer(|durable: &mut Settings| durable.claim_ahead = Some(n))
    }

    /// How long finished runs are kept in the store (default: 7 days and at most 100,000).
    pub fn retention(self, retention: Retention) -> Self {
        self.with_layer(|durable: &mut Settings| durable.retention = retention)
    }
}

// ===== impl TaskRunner =====

impl TaskRunner {
    fn durable(&self) -> Result<&Arc<Durable>, StoreError> {
        Durable::of(&self.shared).ok_or(StoreError::NoStore)
    }

    /// The runner's durable store, if it has one.
    pub fn store(&self) -> Option<&Store> {
        Durable::of(&self.shared).map(|d| &d.store)
    }

    /// Submits a durable run of `def` on `input`: when this returns, the run is committed
    /// to the store, `Pending`, and survives any restart. Any process that registered `def`
    /// may run it; await the handle for its result.
    ///
    /// # Errors
    ///
    /// [`StoreError::NoStore`] if the runner has no store, [`StoreError::Json`] if the input
    /// does not serialize, [`StoreError::Database`] if the store refused the write.
    pub async fn submit<H, I, Fut, T, E>(
        &self,
        def: &TaskDef<H>,
        input: I,
    ) -> Result<RunHandle<T>, StoreError>
    where
        H: Fn(TaskContext, I) -> Fut,
        I: Serialize,
        Fut: Future<Output = Result<T, E>>,
        T: DeserializeOwned + Send + 'static,
    {
        self.submit_with(def, input, RunOptions::new()).await
    }

    /// Like [`submit`](Self::submit), with a priority, a delay, a deduplication key, a
    /// call id or a cost estimate. A `dedup_key` held by a run that has not finished
    /// returns that run's handle (same id) instead of submitting another.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit), and [`StoreError::OverBudget`] if the
    /// [`cost`](RunOptions::cost) estimate is larger than the whole
    /// [`global_budget`](crate::QueueConfig::global_budget) of the run's queue.
    pub async fn submit_with<H, I, Fut, T, E>(
        &self,
        def: &TaskDef<H>,
        input: I,
        options: RunOptions,
    ) -> Result<RunHandle<T>, StoreError>
    where
        H: Fn(TaskContext, I) -> Fut,
        I: Serialize,
        Fut: Future<Output = Result<T, E>>,
        T: DeserializeOwned + Send + 'static,
    {
        let mut handles = self
            .submit_many_with(def, std::iter::once((input, options)))
            .await?;
        Ok(handles.remove(0))
    }

    /// Submits many runs of `def` in one transaction: all are committed, or none.
    ///
    /// # Errors
    ///
    /// As [`submit`](Self::submit).
    pub async fn submit_many<H, I, Fut, T, E>(
        &self,
        def: &TaskDef<H>,
        inputs: impl IntoIterator<Item = I>,
    ) -> Result<Vec<RunHandle<T>>, StoreError>
    where
        H: Fn(TaskContext, I) -> Fut,
        I: Serialize,
        Fut: Future<Output = Result<T, E>>,
        T: DeserializeOwned + Send + 'static,
    {
        let runs = inputs.into_iter().map(|input| (input, RunOptions::new()));
        self.submit_many_with(def, runs).await
    }

    /// Like [`submit_many`](Self::submit_many), each input with its own [`RunOptions`].
    ///
    /// # Errors
    ///
    /// As [`submit_with`](Self::submit_with): one run over budget refuses them all.
    pub async fn submit_many_with<H, I, Fut, T, E>(
        &self,
        def: &TaskDef<H>,
        runs: impl IntoIterator<Item = (I, RunOptions)>,
    ) -> Result<Vec<RunHandle<T>>, StoreError>
    where
        H: Fn(TaskContext, I) -> Fut,
        I: Serialize,
        Fut: Future<Output = Result<T, E>>,
        T: DeserializeOwned + Send + 'static,
    {
        let durable = self.durable()?;
        let max_attempts = def
            .retry_policy()
            .map_or(1, |p| p.retries().saturating_add(1));
        let runs = runs
            .into_iter()
            .map(|(input, options)| {
                let input = serde_json::to_string(&input).map_err(|e| StoreError::Json {
                    name: def.name().to_owned(),
                    what: "input",
                    reason: e.to_string(),
                })?;
                let cost = options.cost.map(|c| i64::try_from(c).unwrap_or(i64::MAX));
                if let (Some(cost), Some(budget)) =
                    (options.cost, durable.global_budgets.get(def.queue_name()))
                {
                    if cost > budget.units() {
                        return Err(StoreError::OverBudget {
                            name: def.name().to_owned(),
                            queue: def.queue_name().to_owned(),
                            cost,
                            units: budget.units(),
                        });
                    }
                }
                Ok(NewRun {
                    name: def.name().to_owned(),
                    queue: def.queue_name().to_owned(),
                    priority: options.priority.unwrap_or(def.priority_value()),
                    input,
                    max_attempts: i32::try_from(max_attempts).unwrap_or(i32::MAX),
                    delay_ms: duration_ms(options.delay),
                    dedup_key: options.dedup_key,
                    call_id: options.call_id,
                    notify: options.notify,
                    cost,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let ids = durable.store.submit(&runs).await?;
        durable.wake_queue(def.queue_name());
        Ok(ids
            .into_iter()
            .map(|id| RunHandle::new(id, Arc::clone(durable)).fresh())
            .collect())
    }

    /// A handle on run `id`, submitted by this process or any other: await it for the result.
    ///
    /// # Errors
    ///
    /// [`StoreError::NoStore`] if the runner has no store.
    pub fn run_handle<T>(&self, id: RunId) -> Result<RunHandle<T>, StoreError> {
        Ok(RunHandle::new(id, Arc::clone(self.durable()?)))
    }

    /// Run `id`'s record, from the store: `None` if there is no such run (or it was pruned).
    /// A run of a name no process registered stays `Pending`, and says so here.
    ///
    /// # Errors
    ///
    /// [`StoreError::NoStore`] without a store, [`StoreError::Database`] if it cannot be read.
    pub async fn run_info(&self, id: RunId) -> Result<Option<RunInfo>, StoreError> {
        self.durable()?.store.run_info(id).await
    }

    /// Cancels run `id` wherever it is: a pending (or delayed) run is cancelled in the same
    /// transaction and never starts; for a running one the intent is stored, and the process
    /// running it stops it within about a heartbeat (at once here, or on PostgreSQL).
    /// Returns `false` if the run had finished or does not exist.
    ///
    /// # Errors
    ///
    /// [`StoreError::NoStore`] without a store, [`StoreError::Database`] if it cannot be written.
    pub async fn cancel_run(&self, id: RunId) -> Result<bool, StoreError> {
        self.durable()?.cancel(id).await
    }

    /// Runs matching `filter`, newest first: for dashboards.
    ///
    /// # Errors
    ///
    /// [`StoreError::NoStore`] without a store, [`StoreError::Database`] if it cannot be read.
    pub async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunInfo>, StoreError> {
        self.durable()?.store.list_runs(&filter).await
    }
}
