//! A task's status record, changed only under its lock, and the [`Stamp`]s it keeps.

use std::time::{Duration, SystemTime};

use super::state::{CancelCause, Phase};
use crate::status::Progress;

/// The mutable part of a task's status, changed only under its lock.
pub(super) struct Record {
    pub(super) phase: Phase,
    pub(super) cause: CancelCause,
    pub(super) started_at: Stamp,
    /// When the running (or last) attempt started, for its run time.
    pub(super) attempt_started: Stamp,
    pub(super) finished_at: Stamp,
    pub(super) error: Option<Box<str>>,
    /// Boxed: most tasks never report progress.
    pub(super) progress: Option<Box<ProgressState>>,
}

impl Record {
    pub(super) fn new() -> Record {
        Record {
            phase: Phase::New,
            cause: CancelCause::User,
            started_at: Stamp::NONE,
            attempt_started: Stamp::NONE,
            finished_at: Stamp::NONE,
            error: None,
            progress: None,
        }
    }
}

pub(super) struct ProgressState {
    pub(super) progress: Progress,
    /// When the last progress event went out, for coalescing.
    pub(super) last_event: Option<tokio::time::Instant>,
}

/// A wall-clock time as nanoseconds since the Unix epoch; 0 means none. Half the size of an
/// `Option<SystemTime>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(u64);

impl Stamp {
    pub(super) const NONE: Stamp = Stamp(0);

    pub(crate) fn now() -> Stamp {
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        // u64 nanoseconds last until the year 2554.
        let nanos = since_epoch
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(since_epoch.subsec_nanos()));
        Stamp(nanos.max(1))
    }

    pub(super) fn get(self) -> Option<SystemTime> {
        (self != Stamp::NONE).then(|| SystemTime::UNIX_EPOCH + Duration::from_nanos(self.0))
    }

    /// The time from `earlier` to this, zero if the wall clock went back.
    pub(crate) fn since(self, earlier: Stamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}
