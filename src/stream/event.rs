//! [`RunEvent`]: one event of a run's stream, and what it says ([`RunEventKind`]).

use std::time::SystemTime;

use crate::store::events::{EventRow, LiveRow};
use crate::store::{to_time, RunStatus};

/// One event of a durable run's stream, from [`TaskRunner::run_events`](crate::TaskRunner::run_events).
///
/// `offset` is the event's place in the run's log (0, 1, 2, ...). To resume after a
/// disconnect, keep [`next_offset`](Self::next_offset) of the last event handled and pass
/// it to [`RunEvents::from`](crate::RunEvents::from).
///
/// ```
/// use std::time::SystemTime;
/// use taskrunner::{RunEvent, RunEventKind, RunStatus};
///
/// let event = RunEvent {
///     offset: 3,
///     at: SystemTime::now(),
///     kind: RunEventKind::Status(RunStatus::Completed),
/// };
/// assert!(event.is_terminal());
/// assert_eq!(event.next_offset(), 4);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    /// Its offset in the run's log. A live event is not in the log: it carries the offset
    /// the next stored event gets (every stored event before it was delivered first).
    pub offset: u64,
    /// When it happened.
    pub at: SystemTime,
    /// What happened.
    pub kind: RunEventKind,
}

/// What a [`RunEvent`] says.
///
/// ```
/// use taskrunner::{RunEventKind, RunStatus};
///
/// let kind = RunEventKind::Emitted { topic: "plan".into(), value: serde_json::json!(["search"]), live: false };
/// assert!(!kind.is_terminal());
/// assert!(RunEventKind::Status(RunStatus::Failed).is_terminal());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RunEventKind {
    /// The handler called [`TaskContext::emit`](crate::TaskContext::emit) (`live: false`,
    /// stored) or [`emit_live`](crate::TaskContext::emit_live) (`live: true`, not stored:
    /// only readers reading at the time get it).
    Emitted {
        /// What it is about (`"plan"`, `"tool_call"`, `"token"`, ..).
        topic: String,
        /// The value, as JSON.
        value: serde_json::Value,
        /// Sent with `emit_live`.
        live: bool,
    },
    /// The run's status changed, as the store recorded it: `Running` when a process claimed
    /// it, `Pending` (or `Delayed`) when it was put back for another try, `Waiting` when a
    /// wait (a signal, a durable sleep, child runs) parked it holding nothing, and its
    /// terminal status (`Completed`, `Failed`, `Cancelled`) last.
    ///
    /// A wait shows as `Status(Waiting)`, then `Status(Running)` when a process claims the
    /// run again to resume it (after the signal, the wake time or the last child): a
    /// `Running` that follows a `Waiting` is a resume, never a retry (a retry follows a
    /// `Pending`/`Delayed`, or is a [`Retrying`](Self::Retrying)). A wait that needs no
    /// parking (its signal was already there) records nothing.
    Status(RunStatus),
    /// The process running it started another attempt after the previous one failed or
    /// timed out (the run stays claimed).
    Retrying {
        /// The new attempt's number, from 1, counted across claims.
        attempt: u32,
    },
}

// ===== impl RunEvent =====

impl RunEvent {
    /// Whether the run ended with this event (a terminal [`RunEventKind::Status`]).
    pub fn is_terminal(&self) -> bool {
        self.kind.is_terminal()
    }

    /// The offset to resume from after this event: `offset + 1` for a stored event,
    /// `offset` for a live one (it took no place in the log).
    pub fn next_offset(&self) -> u64 {
        match self.kind {
            RunEventKind::Emitted { live: true, .. } => self.offset,
            _ => self.offset + 1,
        }
    }

    /// The event a stored row holds; `None` for a kind this build does not know.
    pub(crate) fn from_row(row: EventRow) -> Option<RunEvent> {
        let kind = match row.kind.as_str() {
            "emit" => RunEventKind::Emitted {
                topic: row.topic.unwrap_or_default(),
                value: row
                    .value
                    .and_then(|text| serde_json::from_str(&text).ok())
                    .unwrap_or(serde_json::Value::Null),
                live: false,
            },
            "status" => RunEventKind::Status(match row.topic.as_deref() {
                Some("delayed") => RunStatus::Delayed,
                Some("waiting") => RunStatus::Waiting,
                Some(status) => status_of(status)?,
                None => return None,
            }),
            "retry" => RunEventKind::Retrying {
                attempt: row.value.and_then(|v| v.parse().ok()).unwrap_or(0),
            },
            _ => return None,
        };
        Some(RunEvent {
            offset: u64::try_from(row.seq).unwrap_or(0),
            at: to_time(row.at),
            kind,
        })
    }

    /// A live event, delivered at offset `offset`.
    pub(crate) fn live(row: &LiveRow, offset: u64) -> RunEvent {
        RunEvent {
            offset,
            at: to_time(row.at),
            kind: RunEventKind::Emitted {
                topic: row.topic.clone(),
                value: row.value.clone(),
                live: true,
            },
        }
    }
}

/// The status stored as `status`, if this build knows it (a newer build's status is skipped,
/// never taken for another).
pub(crate) fn status_of(status: &str) -> Option<RunStatus> {
    let known = RunStatus::from_db(status, 0, 0, false);
    (known.as_db() == status).then_some(known)
}

// ===== impl RunEventKind =====

impl RunEventKind {
    /// Whether this is the run's terminal status (`Completed`, `Failed` or `Cancelled`).
    pub fn is_terminal(&self) -> bool {
        matches!(self, RunEventKind::Status(status) if status.is_terminal())
    }
}
