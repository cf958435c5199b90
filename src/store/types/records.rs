//! The records a backend and the runner pass each other: a run to insert ([`NewRun`]), a
//! claimed run ([`Claimed`]), the fenced write of its end ([`Finish`], [`Ending`]), what a
//! cancel found, what a heartbeat holds, and the outcome a handle waits for.

use super::RunId;

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
    /// Its estimate in its queue's budget units ([`RunOptions::cost`](super::RunOptions::cost)).
    pub(crate) cost: Option<i64>,
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
    /// How many times it was recovered after its process was lost (those attempts are not
    /// retries).
    pub recoveries: i32,
    /// The units this claim reserved for it in its queue's global budget (0 without one).
    pub reserved: i64,
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

impl Finish {
    /// This end with its text made storable: PostgreSQL refuses a NUL byte in text, so
    /// (on both backends, for one behaviour) each becomes U+FFFD. A message is kept, never
    /// refused: one run's odd error must not fail a batch of ends.
    pub(crate) fn cleaned(&self) -> Finish {
        Finish {
            error: self.error.as_deref().map(|e| clean_text(e).into_owned()),
            ..self.clone()
        }
    }
}

/// `text` without NUL bytes (each replaced by U+FFFD, the replacement character).
pub(crate) fn clean_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
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

/// What a cancel of a run and its tree found: the run itself, then each unfinished run under
/// it (cancelled or flagged in the same transaction).
pub(crate) type Cancelled = (CancelFound, Vec<(RunId, CancelFound)>);

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
