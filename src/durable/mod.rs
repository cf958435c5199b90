//! The durable side of a runner: claim loops that take runs from the store into the
//! runner's queues, a writer that stores their ends (fenced, in batches), a heartbeat that
//! renews leases, sees cancels and rescues runs of dead processes, and retention.
//!
//! One run's path: `submit` commits it (`api.rs`) → a claim loop of its queue claims it, in
//! claim order, up to the queue's free slots (`claim.rs`) → it runs as an ordinary task of the
//! runner (`registered.rs`: JSON in, JSON out, a `run` span) → its end goes to the writer,
//! which writes it only while the claim's token holds (`worker.rs`) → handles waiting in this
//! process are handed the outcome; others see it when they poll (`handle.rs`).

mod ahead;
mod api;
mod charge;
mod claim;
pub(crate) mod emit;
mod handle;
mod inbox;
mod lease;
mod registered;
mod retry;
mod schedule;
mod shutdown;
pub(crate) mod step;
pub(crate) mod wait;
mod worker;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::QueueConfig;
use crate::runner::{BuildHook, Shared};
use crate::store::{Finish, Outcome, Retention, RunId, Store};
use crate::sync::lock_std;
use crate::{ConfigError, TaskId, TaskRunner};

pub(crate) use handle::convert;
pub use handle::RunHandle;
pub(crate) use lease::LeaseWatch;
pub(crate) use registered::{current_run, Registered};
pub use schedule::{DurableSchedule, ScheduleRunError};

/// How long a claimed run's lease lasts without a heartbeat, unless
/// [`lease`](crate::TaskRunnerBuilder::lease) says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// How often a runner looks for runs it was not told about (submitted by another process
/// on SQLite, or a lost notification on PostgreSQL), unless
/// [`poll_interval`](crate::TaskRunnerBuilder::poll_interval) says otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The most runs one claim takes.
const CLAIM_BATCH: usize = 256;

/// What the builder collects for the durable side.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) store: Option<Store>,
    pub(crate) defs: Vec<Arc<dyn Registered>>,
    pub(crate) lease: Duration,
    pub(crate) poll: Duration,
    pub(crate) retention: Retention,
    /// `None`: adaptive (see `ahead.rs`).
    pub(crate) claim_ahead: Option<usize>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            store: None,
            defs: Vec::new(),
            lease: DEFAULT_LEASE,
            poll: DEFAULT_POLL_INTERVAL,
            retention: Retention::default(),
            claim_ahead: None,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Durable")
            .field("store", &self.store)
            .field(
                "registered",
                &self.defs.iter().map(|d| d.name()).collect::<Vec<_>>(),
            )
            .field("lease", &self.lease)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

/// The claim loop of one queue.
struct Plan {
    queue: String,
    names: Vec<String>,
    global: crate::store::GlobalLimits,
    wake: Notify,
    /// How long its runs take here, for the adaptive read-ahead.
    times: ahead::RunTimes,
}

/// A run this process claimed and has not yet written the end of.
struct Active {
    token: i64,
    task: Option<TaskId>,
    claimed: Instant,
    /// When its first attempt began here (`None`: it waits for a slot).
    started: Option<Instant>,
    /// Claimed under the adaptive read-ahead: handed back if it waits too long to start.
    ahead: bool,
    /// Its queue's claim loop (an index of `Durable::plans`).
    plan: usize,
    /// Its end is not to be written: it was released, or its lease was lost.
    quiet: bool,
    cancel_sent: bool,
    /// Its end went to the writer (the run may no longer be `running` in the store).
    ending: bool,
}

/// An end for the writer.
struct Done {
    finish: Finish,
    plan: usize,
}

pub(crate) struct Durable {
    pub(crate) store: Store,
    /// The runner, for cancels seen by a handle or a notification.
    runner: Weak<Shared>,
    owner: String,
    lease: Duration,
    poll: Duration,
    retention: Retention,
    claim_ahead: Option<usize>,
    defs: HashMap<String, Arc<dyn Registered>>,
    plans: Vec<Plan>,
    /// The queues' global budgets, for the check at submit.
    global_budgets: HashMap<String, crate::Budget>,
    active: std::sync::Mutex<HashMap<RunId, Active>>,
    waiters: std::sync::Mutex<HashMap<RunId, Vec<oneshot::Sender<Outcome>>>>,
    done_tx: mpsc::UnboundedSender<Done>,
    /// Stops the claim loops (shutdown).
    claiming: CancellationToken,
    /// Stops everything else (the end of shutdown).
    stop: CancellationToken,
    /// Notified whenever the writer has nothing left in flight.
    flushed: Notify,
    /// Wakes the durable schedules' fire loop (a schedule created or resumed here).
    schedules_wake: Notify,
    /// Held (shared) by a claim from its statement until its runs are in `active`; the
    /// heartbeat hands back unknown runs only when it can take it alone.
    claim_gate: tokio::sync::RwLock<()>,
}

impl fmt::Debug for Durable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Durable")
            .field("store", &self.store)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

// ===== impl Settings =====

impl BuildHook for Settings {
    /// Checks the durable settings against the declared queues (`global_concurrency(0)` is
    /// rejected by the builder itself, store or not).
    fn validate(&self, queues: &[(String, QueueConfig)]) -> Result<(), ConfigError> {
        for (i, def) in self.defs.iter().enumerate() {
            if self.store.is_none() {
                return Err(ConfigError::RegisterWithoutStore(def.name().to_owned()));
            }
            if !queues.iter().any(|(q, _)| q == def.queue()) {
                return Err(ConfigError::UnknownQueue(def.queue().to_owned()));
            }
            if self.defs[..i].iter().any(|d| d.name() == def.name()) {
                return Err(ConfigError::DuplicateRegistration(def.name().to_owned()));
            }
        }
        if self.store.is_some() && tokio::runtime::Handle::try_current().is_err() {
            return Err(ConfigError::StoreNeedsRuntime);
        }
        Ok(())
    }

    /// Starts the durable side of a runner just built, if it has a store: its claim loops,
    /// writer, heartbeat, schedules' fire loop and pruning; and adds it to the runner's
    /// extensions.
    fn start(&self, queues: &[(String, QueueConfig)], shared: &Arc<Shared>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let mut plans: Vec<Plan> = Vec::new();
        for def in &self.defs {
            let global = queues
                .iter()
                .find(|(q, _)| q == def.queue())
                .map(|(_, c)| {
                    let rate = c.global_rate_limit.map(|r| (r.starts(), r.per()));
                    crate::store::GlobalLimits::new(c.global_concurrency, rate)
                        .with_budget(c.global_budget.map(|b| (b.units(), b.per())))
                })
                .unwrap_or_default();
            match plans.iter_mut().find(|p| p.queue == def.queue()) {
                Some(plan) => plan.names.push(def.name().to_owned()),
                None => plans.push(Plan {
                    queue: def.queue().to_owned(),
                    names: vec![def.name().to_owned()],
                    global,
                    wake: Notify::new(),
                    times: ahead::RunTimes::default(),
                }),
            }
        }
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let durable = Arc::clone(shared.extensions.get_or_add(|| {
            Arc::new(Durable {
                store,
                runner: Arc::downgrade(shared),
                owner: format!("{}-{:016x}", std::process::id(), fastrand::u64(..)),
                lease: self.lease,
                poll: self.poll,
                retention: self.retention.clone(),
                claim_ahead: self.claim_ahead,
                defs: self
                    .defs
                    .iter()
                    .map(|d| (d.name().to_owned(), Arc::clone(d)))
                    .collect(),
                plans,
                global_budgets: queues
                    .iter()
                    .filter_map(|(q, c)| Some((q.clone(), c.global_budget?)))
                    .collect(),
                active: std::sync::Mutex::new(HashMap::new()),
                waiters: std::sync::Mutex::new(HashMap::new()),
                done_tx,
                claiming: CancellationToken::new(),
                stop: CancellationToken::new(),
                flushed: Notify::new(),
                schedules_wake: Notify::new(),
                claim_gate: tokio::sync::RwLock::new(()),
            })
        }));
        let weak = Arc::downgrade(shared);
        for i in 0..durable.plans.len() {
            tokio::spawn(claim::claim_loop(weak.clone(), Arc::clone(&durable), i));
        }
        tokio::spawn(worker::writer(weak.clone(), Arc::clone(&durable), done_rx));
        if !durable.plans.is_empty() {
            worker::spawn_heartbeat(weak.clone(), Arc::clone(&durable));
            #[cfg(feature = "postgres")]
            if durable.store.as_pg().is_some() {
                tokio::spawn(worker::listen(weak.clone(), Arc::clone(&durable)));
            }
        }
        if !durable.defs.is_empty() {
            tokio::spawn(schedule::fire_loop(weak.clone(), Arc::clone(&durable)));
        }
        tokio::spawn(worker::prune(weak, Arc::clone(&durable)));
    }
}

// ===== impl Durable =====

impl Durable {
    /// The durable side of the runner behind `shared`, if it was built with a store.
    pub(crate) fn of(shared: &Shared) -> Option<&Arc<Durable>> {
        shared.extensions.get()
    }

    pub(crate) fn wake_queue(&self, queue: &str) {
        if let Some(plan) = self.plans.iter().find(|p| p.queue == queue) {
            plan.wake.notify_one();
        }
    }

    fn wake_all(&self) {
        for plan in &self.plans {
            plan.wake.notify_one();
        }
    }

    /// Registers interest in `id`'s outcome, handed over by the writer of this process.
    fn watch(&self, id: RunId) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        let mut waiters = lock_std(&self.waiters);
        let list = waiters.entry(id).or_default();
        list.retain(|s| !s.is_closed());
        list.push(tx);
        rx
    }

    fn unwatch(&self, id: RunId) {
        let mut waiters = lock_std(&self.waiters);
        if let Some(list) = waiters.get_mut(&id) {
            list.retain(|s| !s.is_closed());
            if list.is_empty() {
                waiters.remove(&id);
            }
        }
    }

    fn deliver(&self, id: RunId, outcome: &Outcome) {
        let senders = lock_std(&self.waiters).remove(&id);
        for sender in senders.into_iter().flatten() {
            let _ = sender.send(outcome.clone());
        }
    }

    /// Cancels `id` in this process if it runs here (a stored cancel intent, seen).
    fn cancel_local(&self, runner: &TaskRunner, id: RunId) {
        let task = {
            let mut active = lock_std(&self.active);
            match active.get_mut(&id) {
                Some(a) if !a.cancel_sent => {
                    a.cancel_sent = true;
                    a.task
                }
                _ => None,
            }
        };
        if let Some(task) = task {
            runner.cancel(task);
        }
    }

    /// Stores the intent to cancel `id`: a pending run is cancelled in the same transaction;
    /// a running one is stopped here at once if it runs here, else by its process.
    pub(crate) async fn cancel(&self, id: RunId) -> Result<bool, crate::store::StoreError> {
        use crate::store::CancelFound;
        let (found, tree) = self.store.cancel(id).await?;
        // A cancelled run may have been the last one a waiting run joined: it is due now.
        self.wake_all();
        self.cancelled_tree(tree);
        match found {
            CancelFound::Nothing => Ok(false),
            CancelFound::Cancelled => {
                self.deliver(
                    id,
                    &Outcome {
                        status: "cancelled".into(),
                        output: None,
                        error: Some("cancelled".into()),
                        error_kind: Some("cancelled".into()),
                    },
                );
                Ok(true)
            }
            CancelFound::Requested => {
                if let Some(runner) = upgrade(&self.runner) {
                    self.cancel_local(&runner, id);
                }
                Ok(true)
            }
        }
    }
}

/// The runner behind `weak`, if any clone of it, or a task of it, is still alive.
fn upgrade(weak: &Weak<Shared>) -> Option<TaskRunner> {
    weak.upgrade().map(TaskRunner::from_shared)
}
