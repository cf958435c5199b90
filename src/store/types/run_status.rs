//! [`RunStatus`]: where a durable run is in its life.

use serde::{Deserialize, Serialize};

/// Where a durable run is in its life, as the store records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting to be claimed by a process that registered its name.
    Pending,
    /// Waiting for its start time ([`RunOptions::delay`](super::RunOptions::delay)); then
    /// `Pending`.
    Delayed,
    /// Claimed by a process, which runs it (or waits out a retry's backoff).
    Running,
    /// Its handler waits (a signal, a durable sleep, child runs) holding no worker: no slot,
    /// no `global_concurrency` place, no lease. [`RunInfo::waiting_for`](super::RunInfo::waiting_for)
    /// says for what; it is claimed again, by any process that registered its name, once
    /// that happens.
    Waiting,
    /// The handler returned `Ok`; [`RunInfo::output`](super::RunInfo::output) holds the value.
    Completed,
    /// Failed, timed out, panicked, its input no longer deserialized, or its process was
    /// lost past its retries; [`RunInfo::error`](super::RunInfo::error) says which.
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
            RunStatus::Pending | RunStatus::Delayed | RunStatus::Waiting => "pending",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// The status a row shows: a waiting run is stored `pending` with its wait's kind and
    /// the time it is due; once due it is `Pending` again.
    pub(crate) fn from_db(status: &str, scheduled_at: i64, now: i64, waiting: bool) -> RunStatus {
        match status {
            "pending" if scheduled_at > now && waiting => RunStatus::Waiting,
            "pending" if scheduled_at > now => RunStatus::Delayed,
            "pending" => RunStatus::Pending,
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            _ => RunStatus::Cancelled,
        }
    }
}
