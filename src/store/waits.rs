//! Runs that wait without holding a worker, in the store: the mailbox of signals, the waits a
//! run recorded (replayed like steps), its child runs, and the fenced write that parks a run
//! (`pending`, due when what it waits for happens, no lease).
//!
//! Every operation that a handler's wait makes runs in one transaction fenced by the run's
//! claim token: a stale worker can neither consume a signal nor park the run.

pub(crate) mod children;
pub(crate) mod sql;

use super::dialect::Dialect as _;
use super::types::{NewRun, Outcome, RunId};
use super::{Backend, Store, StoreError};

/// A waiting run for children is due "never" until its last child ends (9999-12-31).
pub(crate) const NEVER_MS: i64 = 253_402_300_799_999;

/// What a wait found.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitStep {
    /// It is over: the consumed signal's value (JSON), or `None` (timed out; a sleep that
    /// woke).
    Ready(Option<String>),
    /// The run was parked: it waits in the store, holding nothing.
    Parked,
    /// This claim no longer holds the run (its lease was lost, or a cancel is pending).
    Fenced,
}

/// What a join found.
#[derive(Debug, Clone)]
pub(crate) enum JoinStep {
    /// Every child has ended: their outcomes, in the order asked.
    Ready(Vec<Outcome>),
    /// The run was parked until they have.
    Parked,
    /// This claim no longer holds the run.
    Fenced,
}

/// When a sleep wakes: recorded at its first call, so that a replay waits only what is left.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wake {
    /// This many milliseconds after the first call.
    After(i64),
    /// At this time (milliseconds since the epoch).
    At(i64),
}

/// What a signal found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SignalSent {
    /// Kept in the run's mailbox (and the run made due if it waited for it).
    Sent {
        /// The run's queue, to wake its claimers.
        queue: String,
    },
    /// No such run.
    Unknown,
    /// The run has ended, with this status.
    Finished(String),
}

/// An outcome as a join records it (JSON), so that a replay gets the same one even once the
/// child is pruned.
pub(crate) fn outcome_json(outcome: &Outcome) -> String {
    serde_json::json!({
        "status": outcome.status,
        "output": outcome.output,
        "error": outcome.error,
        "error_kind": outcome.error_kind,
    })
    .to_string()
}

pub(crate) fn outcome_from_json(json: &str) -> Outcome {
    let value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let text = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    Outcome {
        status: text("status").unwrap_or_else(|| "failed".to_owned()),
        output: text("output"),
        error: text("error"),
        error_kind: text("error_kind"),
    }
}

/// The outcome a join gets for a child that is not in the store.
pub(crate) fn missing_child(id: RunId) -> Outcome {
    Outcome {
        status: "failed".into(),
        output: None,
        error: Some(format!(
            "child run {id} is not in the store: it was pruned, or deleted"
        )),
        error_kind: Some("failed".into()),
    }
}

impl Store {
    /// The `idx`-th wait for signal `name` of run `id`: consumes the oldest signal of that
    /// name if one is kept, else times out at the deadline stored at the first call, else
    /// parks the run until a signal or the deadline.
    #[doc(hidden)]
    pub async fn wait_signal(
        &self,
        id: RunId,
        token: i64,
        name: &str,
        idx: i32,
        timeout_ms: i64,
    ) -> Result<WaitStep, StoreError> {
        let name = name.to_owned();
        dispatch!(self, s => s.wait_write(move |s, c| Box::pin(async move {
            s.wait_signal_in(c, id, token, &name, idx, timeout_ms).await
        })).await)
    }

    /// The `idx`-th durable sleep of run `id`: over once its stored wake time passed, else
    /// the run is parked until then.
    pub(crate) async fn wait_sleep(
        &self,
        id: RunId,
        token: i64,
        idx: i32,
        wake: Wake,
    ) -> Result<WaitStep, StoreError> {
        dispatch!(self, s => s.wait_write(move |s, c| Box::pin(async move {
            s.wait_sleep_in(c, id, token, idx, wake).await
        })).await)
    }

    /// Submits `child` as the `idx`-th spawn of its name by run `id`, or returns the child
    /// that call spawned before; `None` if this claim no longer holds the run.
    pub(crate) async fn spawn_child(
        &self,
        id: RunId,
        token: i64,
        idx: i32,
        child: &NewRun,
    ) -> Result<Option<RunId>, StoreError> {
        dispatch!(self, s => s.spawn_child(id, token, idx, child).await)
    }

    /// The outcomes of `children` once all have ended (recorded, for replays); else parks
    /// run `id` until the last of them ends.
    pub(crate) async fn join_children(
        &self,
        id: RunId,
        token: i64,
        children: &[RunId],
    ) -> Result<JoinStep, StoreError> {
        dispatch!(self, s => s.join_children(id, token, children).await)
    }

    /// Keeps `value` (JSON) in run `id`'s mailbox for signal `name`, and makes the run due
    /// if it waits for that signal.
    pub(crate) async fn signal(
        &self,
        id: RunId,
        name: &str,
        value: &str,
    ) -> Result<SignalSent, StoreError> {
        let (name, value) = (name.to_owned(), value.to_owned());
        dispatch!(self, s => s.wait_write(move |s, c| Box::pin(async move {
            s.signal_in(c, id, &name, &value).await
        })).await)
    }
}

impl Store {
    /// The query plans (`EXPLAIN`) of the claim and of the next-due query for `queue` and
    /// `names`, as this store runs them: for the test that asserts they read indexes only.
    /// The queues of the runs that were joining any of `ended` and are now due. Only SQLite
    /// answers: on PostgreSQL the run's end notifies the joiner's queue (`NOTIFY`), which
    /// wakes the claimers of every process, this one's included.
    #[cfg_attr(not(feature = "sqlite"), allow(unused_variables))]
    pub(crate) async fn joiners_due(&self, ended: &[RunId]) -> Result<Vec<String>, StoreError> {
        match &self.0 {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(s) if !ended.is_empty() => s.joiners_due(ended).await,
            _ => Ok(Vec::new()),
        }
    }

    #[doc(hidden)]
    pub async fn due_plans(
        &self,
        queue: &str,
        names: &[String],
    ) -> Result<Vec<String>, StoreError> {
        dispatch!(self, s => s.due_plans(queue, names).await)
    }
}
