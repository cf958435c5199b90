//! [`TaskStatus`], and the finer internal [`Phase`] a task moves through.

/// Where a task is in its life.
///
/// ```text
///             ┌──────── cancel ─────────┐
///             │                         ▼
/// Pending ─► Running ─► Completed   Cancelled
///    ▲          │  └──► Failed          ▲
///    │          ▼                       │
///    └──── Retrying ──── cancel ────────┘
/// ```
///
/// A task enqueued with a [`delay`](crate::Task::delay) starts as `Delayed` and becomes
/// `Pending` (or `Running`) when its start time comes; a cancel ends it `Cancelled`.
///
/// `Completed`, `Failed` and `Cancelled` are terminal: a task that reaches one never leaves it.
/// A timed-out or panicked task ends `Failed`; [`TaskInfo::error`](crate::TaskInfo::error) says
/// why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    /// Waiting in its queue for a free slot.
    Pending,
    /// Waiting for its start time ([`Task::delay`](crate::Task::delay)), not yet in its
    /// queue's order: it holds no slot and is not counted as pending.
    Delayed,
    /// Its handler is running (or, once cancelled, being stopped).
    Running,
    /// An attempt failed; it is waiting out its backoff delay, holding no slot.
    Retrying,
    /// The handler returned `Ok`.
    Completed,
    /// The handler failed, timed out or panicked, with no retry left.
    Failed,
    /// Cancelled, or stopped by [`shutdown_now`](crate::TaskRunner::shutdown_now).
    ///
    /// A running task says so as soon as its cancel is accepted (`cancel()` returned
    /// `true`), though its handler's future is dropped, and its slot freed, only when its
    /// worker next gets to it (at once, unless a [cancel grace](crate::Task::cancel_grace) lets
    /// the handler finish); its [`finished_at`](crate::TaskInfo::finished_at) is set then.
    Cancelled,
}

impl TaskStatus {
    /// Whether the task has ended (`Completed`, `Failed` or `Cancelled`).
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

/// The internal state machine: [`TaskStatus`] plus the distinctions only the runner needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Enqueued and registered, not yet admitted to its queue.
    New = 0,
    /// In its queue's heap.
    Queued = 1,
    Running = 2,
    /// Running, but cancel was asked: the worker will drop the handler and end it `Cancelled`.
    Cancelling = 3,
    Retrying = 4,
    Completed = 5,
    Failed = 6,
    Cancelled = 7,
    /// Waiting out its [`Task::delay`](crate::Task::delay), not yet admitted to its queue.
    Delayed = 8,
}

impl Phase {
    pub(crate) const fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::New,
            1 => Phase::Queued,
            2 => Phase::Running,
            3 => Phase::Cancelling,
            4 => Phase::Retrying,
            5 => Phase::Completed,
            6 => Phase::Failed,
            8 => Phase::Delayed,
            _ => Phase::Cancelled,
        }
    }

    pub(crate) const fn status(self) -> TaskStatus {
        match self {
            Phase::New | Phase::Queued => TaskStatus::Pending,
            Phase::Running => TaskStatus::Running,
            // Its cancel was accepted: it ends `Cancelled` whatever its handler does now.
            Phase::Cancelling => TaskStatus::Cancelled,
            Phase::Retrying => TaskStatus::Retrying,
            Phase::Completed => TaskStatus::Completed,
            Phase::Failed => TaskStatus::Failed,
            Phase::Cancelled => TaskStatus::Cancelled,
            Phase::Delayed => TaskStatus::Delayed,
        }
    }

    pub(crate) const fn is_terminal(self) -> bool {
        matches!(self, Phase::Completed | Phase::Failed | Phase::Cancelled)
    }
}
