//! How the world hears about tasks: the event stream, the notification inbox, per-queue
//! timings and (feature `metrics`) the `metrics` facade.
//!
//! Below the task layer: nothing here knows what a task is made of. A task shows itself to
//! the event stream as a [`Subject`].

use crate::config::{DEFAULT_EVENT_CAPACITY, DEFAULT_NOTIFICATION_CAPACITY, DEFAULT_SUMMARY_LEN};

pub(crate) mod events;
pub(crate) mod inbox;
pub(crate) mod metrics;
pub(crate) mod timing;

pub use events::{Event, EventKind, EventStream, Lagged};
pub(crate) use events::{Events, Subject};
pub(crate) use inbox::Inbox;
pub use inbox::Notification;
pub use timing::Percentiles;
pub(crate) use timing::Timings;

/// Where a runner's tasks report: the event channel and the notification inbox. One per
/// runner, shared by its queues' tags, so that a task reports without reaching back into
/// the runner.
pub(crate) struct Observers {
    pub(crate) events: Events,
    pub(crate) inbox: Inbox,
    /// Every task deposits a notification, not only those asking with `Task::notify`.
    pub(crate) notify_all: bool,
}

impl Observers {
    /// Observers with room for `event_capacity` events of slack per subscriber and
    /// `notification_capacity` undrained notifications of at most `summary_len` characters.
    pub(crate) fn new(
        event_capacity: usize,
        notification_capacity: usize,
        summary_len: usize,
        notify_all: bool,
    ) -> Observers {
        Observers {
            events: Events::new(event_capacity),
            inbox: Inbox::new(notification_capacity, summary_len),
            notify_all,
        }
    }
}

/// Observers with the default settings, for driving a queue alone in tests.
impl Default for Observers {
    fn default() -> Observers {
        Observers::new(
            DEFAULT_EVENT_CAPACITY,
            DEFAULT_NOTIFICATION_CAPACITY,
            DEFAULT_SUMMARY_LEN,
            false,
        )
    }
}
