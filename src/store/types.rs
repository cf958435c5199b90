//! The records the durable store keeps and hands back: [`RunId`], [`RunStatus`], [`RunInfo`],
//! [`RunOptions`] and [`RunFilter`].

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A durable run's identity: unique in its store, never reused (not even after pruning).
///
/// Displayed as its number, and parsed back from it, so it can travel through a URL or an
/// agent's tool call and be polled from any process.
///
/// ```
/// use taskrunner::RunId;
///
/// let id: RunId = "42".parse().unwrap();
/// assert_eq!(id.to_string(), "42");
/// assert_eq!(serde_json::to_string(&id).unwrap(), "42");
/// assert!("forty-two".parse::<RunId>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(i64);

impl RunId {
    /// The id as a number.
    pub const fn as_i64(self) -> i64 {
        self.0
    }

    pub(crate) const fn from_i64(id: i64) -> RunId {
        RunId(id)
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A string that is not a [`RunId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a run id: a run id is a positive whole number, such as `42`")]
pub struct ParseRunIdError(String);

impl FromStr for RunId {
    type Err = ParseRunIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().parse::<i64>() {
            Ok(id) if id > 0 => Ok(RunId(id)),
            _ => Err(ParseRunIdError(s.chars().take(64).collect())),
        }
    }
}

/// Where a durable run is in its life, as the store records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting to be claimed by a process that registered its name.
    Pending,
    /// Waiting for its start time ([`RunOptions::delay`]); then `Pending`.
    Delayed,
    /// Claimed by a process, which runs it (or waits out a retry's backoff).
    Running,
    /// The handler returned `Ok`; [`RunInfo::output`] holds the value.
    Completed,
    /// Failed, timed out, panicked, its input no longer deserialized, or its process was
    /// lost past its retries; [`RunInfo::error`] says which.
    Failed,
    /// Cancelled with [`TaskRunner::cancel_run`](crate::TaskRunner::cancel_run).
    Cancelled,
}

impl RunStatus {
    /// Whether the run has ended (`Completed`, `Failed` or `Cancelled`).
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    /// The status as stored (`Delayed` is stored as `pending` with a later start time).
    pub(crate) const fn as_db(self) -> &'static str {
        match self {
            RunStatus::Pending | RunStatus::Delayed => "pending",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub(crate) fn from_db(status: &str, scheduled_at: i64, now: i64) -> RunStatus {
        match status {
            "pending" if scheduled_at > now => RunStatus::Delayed,
            "pending" => RunStatus::Pending,
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            _ => RunStatus::Cancelled,
        }
    }
}

/// A durable run's record, from [`TaskRunner::run_info`](crate::TaskRunner::run_info) or
/// [`TaskRunner::list_runs`](crate::TaskRunner::list_runs).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunInfo {
    /// The run's id.
    pub id: RunId,
    /// The [`TaskDef`](crate::TaskDef)'s name.
    pub name: String,
    /// The queue it runs in.
    pub queue: String,
    /// Higher is claimed first.
    pub priority: i32,
    /// Where it is now.
    pub status: RunStatus,
    /// Attempts started so far, across every process that claimed it.
    pub attempts: u32,
    /// The most attempts it may have (1 + the definition's retries).
    pub max_attempts: u32,
    /// The call id it answers.
    pub call_id: Option<String>,
    /// Its deduplication key, if submitted with one.
    pub dedup_key: Option<String>,
    /// When it was submitted.
    pub created_at: SystemTime,
    /// When it may start (later than `created_at` for a delayed run).
    pub scheduled_at: SystemTime,
    /// When its first attempt started.
    pub started_at: Option<SystemTime>,
    /// When it ended.
    pub finished_at: Option<SystemTime>,
    /// Why it failed or was cancelled: the handler's error as its `Display`, or what the
    /// runner saw (a timeout, a panic, an input that no longer deserializes, a lost worker).
    pub error: Option<String>,
    /// The handler's `Ok` value, as JSON.
    pub output: Option<serde_json::Value>,
    /// Whether a cancel was asked for while it ran.
    pub cancel_requested: bool,
    /// Its durable steps ([`TaskContext::step`](crate::TaskContext::step)) in the order they
    /// first started: how far the run got. Filled by
    /// [`run_info`](crate::TaskRunner::run_info); empty in
    /// [`list_runs`](crate::TaskRunner::list_runs).
    pub steps: Vec<super::StepInfo>,
}

/// Options for one submitted run, for [`TaskRunner::submit_with`](crate::TaskRunner::submit_with)
/// and [`TaskRunner::submit_many`](crate::TaskRunner::submit_many).
///
/// # Default
///
/// The definition's priority, no delay, no deduplication key, a generated call id.
///
/// ```
/// use std::time::Duration;
/// use taskrunner::RunOptions;
///
/// let options = RunOptions::new()
///     .priority(5)
///     .delay(Duration::from_secs(60))
///     .dedup_key("req-42")
///     .call_id("call_7");
/// # drop(options);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    pub(crate) priority: Option<i32>,
    pub(crate) delay: Duration,
    pub(crate) dedup_key: Option<String>,
    pub(crate) call_id: Option<String>,
    pub(crate) notify: bool,
}

impl RunOptions {
    /// Options with every default.
    pub fn new() -> Self {
        RunOptions::default()
    }

    /// Higher is claimed first (default: the definition's priority).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Not claimed before `delay` has passed (status [`RunStatus::Delayed`] meanwhile).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// While a run submitted with this key has not finished, submitting another with it
    /// returns the existing run instead (same id): submitting becomes idempotent.
    pub fn dedup_key(mut self, key: impl Into<String>) -> Self {
        self.dedup_key = Some(key.into());
        self
    }

    /// When the run ends, deposit a [`RunNotification`](super::RunNotification) in the store,
    /// for [`TaskRunner::drain_run_notifications`](crate::TaskRunner::drain_run_notifications)
    /// on any process to hand to exactly one drainer.
    pub fn notify(mut self) -> Self {
        self.notify = true;
        self
    }

    /// The model's call id the run answers (echoed in [`TaskContext::call_id`](crate::TaskContext::call_id)).
    pub fn call_id(mut self, call_id: impl Into<String>) -> Self {
        self.call_id = Some(call_id.into());
        self
    }
}

/// Which runs [`TaskRunner::list_runs`](crate::TaskRunner::list_runs) returns: newest first,
/// at most `limit` (default 100).
///
/// ```
/// use taskrunner::{RunFilter, RunStatus};
///
/// let failed_research = RunFilter::new().status(RunStatus::Failed).name("research").limit(20);
/// # drop(failed_research);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFilter {
    pub(crate) status: Option<RunStatus>,
    pub(crate) name: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) limit: u32,
}

impl Default for RunFilter {
    fn default() -> Self {
        RunFilter {
            status: None,
            name: None,
            queue: None,
            limit: 100,
        }
    }
}

impl RunFilter {
    /// Every run, newest first, at most 100.
    pub fn new() -> Self {
        RunFilter::default()
    }

    /// Only runs with this status.
    pub fn status(mut self, status: RunStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only runs of this definition.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Only runs in this queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// At most this many runs.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }
}

// ===== records between the runner and a backend =====

/// A run to insert.
#[derive(Debug, Clone)]
pub(crate) struct NewRun {
    pub(crate) name: String,
    pub(crate) queue: String,
    pub(crate) priority: i32,
    pub(crate) input: String,
    pub(crate) max_attempts: i32,
    pub(crate) delay_ms: i64,
    pub(crate) dedup_key: Option<String>,
    pub(crate) call_id: Option<String>,
    pub(crate) notify: bool,
}

/// A run a process has just claimed.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The run.
    pub id: RunId,
    /// Its definition's name.
    pub name: String,
    /// Its priority.
    pub priority: i32,
    /// Its input, as JSON.
    pub input: String,
    /// Attempts started, this claim's included.
    pub attempts: i32,
    /// Its most attempts.
    pub max_attempts: i32,
    /// The fencing token of this claim: every later write for the run names it.
    pub token: i64,
    /// Its call id.
    pub call_id: Option<String>,
    /// When it may have started (for the claim order).
    pub scheduled_at: i64,
}

/// How a run ended, as the process that ran it writes it.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// `Ok`.
    Completed,
    /// The handler's error, or its input did not deserialize.
    Failed,
    /// The last attempt timed out.
    TimedOut,
    /// The handler panicked.
    Panicked,
    /// Cancelled.
    Cancelled,
}

impl Ending {
    pub(crate) const fn status(self) -> &'static str {
        match self {
            Ending::Completed => "completed",
            Ending::Failed | Ending::TimedOut | Ending::Panicked => "failed",
            Ending::Cancelled => "cancelled",
        }
    }

    pub(crate) const fn kind(self) -> Option<&'static str> {
        match self {
            Ending::Completed => None,
            Ending::Failed => Some("failed"),
            Ending::TimedOut => Some("timed_out"),
            Ending::Panicked => Some("panicked"),
            Ending::Cancelled => Some("cancelled"),
        }
    }
}

/// A fenced write of a run's end: applied only while `token` is the run's claim token.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Finish {
    /// The run.
    pub id: RunId,
    /// The claim token the writer holds.
    pub token: i64,
    /// How it ended.
    pub ending: Ending,
    /// The output, as JSON, for `Completed`.
    pub output: Option<String>,
    /// The error message otherwise.
    pub error: Option<String>,
}

/// What a cancel found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelFound {
    /// No such run, or it had finished.
    Nothing,
    /// It was waiting: cancelled in the same transaction.
    Cancelled,
    /// It is running: the intent is stored for the process that runs it.
    Requested,
}

/// One run a process holds, as a heartbeat sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    pub(crate) id: RunId,
    pub(crate) token: i64,
    pub(crate) cancel_requested: bool,
}

/// The status, output and error a [`RunHandle`](crate::RunHandle) waits for.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) status: String,
    pub(crate) output: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) error_kind: Option<String>,
}

impl Outcome {
    pub(crate) fn pending() -> Outcome {
        Outcome {
            status: "pending".into(),
            output: None,
            error: None,
            error_kind: None,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub(crate) fn to_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}
