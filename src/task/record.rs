//! A task's status record, changed only under its lock, and the [`Stamp`]s it keeps.

use std::time::{Duration, SystemTime};

use super::state::{CancelCause, Phase};
use crate::status::Progress;

/// The mutable part of a task's status, changed only under its lock.
pub(super) struct Record {
    pub(super) phase: Phase,
    pub(super) cause: CancelCause,
    pub(super) started_at: Stamp,
    /// While the task runs, when its attempt started (for its run time); once it has
    /// ended, when it ended. One field for both: an ended task has no attempt running.
    pub(super) attempt_or_end: Stamp,
    /// Its handler runs but gave its slot back (`TaskContext::without_slot`), and has not
    /// got one again: `Waiting`, or `Queued` or `Held` on its way back, or `Cancelling`.
    pub(super) slotless: bool,
    /// The error and the progress, boxed together: most tasks have neither, and then pay 8
    /// bytes, not 24.
    notes: Option<Box<Notes>>,
}

/// What few tasks have: an error (a failed or cancelled one), reported progress.
#[derive(Default)]
struct Notes {
    error: Option<Box<str>>,
    progress: Option<ProgressState>,
}

impl Record {
    pub(super) fn new() -> Record {
        Record {
            phase: Phase::New,
            cause: CancelCause::User,
            started_at: Stamp::NONE,
            attempt_or_end: Stamp::NONE,
            slotless: false,
            notes: None,
        }
    }

    /// The last attempt's error, or why the task was cancelled.
    pub(super) fn error(&self) -> Option<&str> {
        self.notes.as_ref()?.error.as_deref()
    }

    #[inline]
    pub(super) fn set_error(&mut self, error: Option<Box<str>>) {
        match (&mut self.notes, error) {
            (Some(notes), error) => {
                notes.error = error;
                if notes.error.is_none() && notes.progress.is_none() {
                    self.notes = None;
                }
            }
            (None, None) => {}
            (None, Some(error)) => {
                self.notes = Some(Box::new(Notes {
                    error: Some(error),
                    progress: None,
                }));
            }
        }
    }

    pub(super) fn progress(&self) -> Option<&Progress> {
        Some(&self.notes.as_ref()?.progress.as_ref()?.progress)
    }

    /// The progress state, made on the first report.
    pub(super) fn progress_mut(&mut self) -> &mut ProgressState {
        let notes = self.notes.get_or_insert_with(Box::default);
        notes.progress.get_or_insert_with(|| ProgressState {
            progress: Progress::default(),
            last_event: None,
        })
    }

    /// When the task ended, once it has.
    pub(super) fn finished_at(&self) -> Option<Stamp> {
        matches!(
            self.phase,
            Phase::Completed | Phase::Failed | Phase::Cancelled
        )
        .then_some(self.attempt_or_end)
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
