//! The notification inbox: what finished, for an agent loop to read before its next model call.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::Notify;

use crate::sync::lock_std;
use crate::{TaskId, TaskStatus};

/// A finished task's notice, from [`TaskRunner::drain_notifications`](crate::TaskRunner::drain_notifications).
///
/// Tasks deposit one when they finish if they were enqueued with
/// [`Task::notify`](crate::Task::notify) (or [`Task::notify_with`](crate::Task::notify_with)),
/// or if the runner was built with
/// [`notify_all`](crate::TaskRunnerBuilder::notify_all).
///
/// ```
/// use taskrunner::{Task, TaskRunner, TaskStatus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::builder().summary_len(10).build()?;
/// let handle = runner.enqueue_task(
///     Task::new("grep", |_ctx| async { Ok::<_, String>("a very long match".to_owned()) })
///         .call_id("call_3")
///         .notify_with(|out: &String| out.clone()),
/// )?;
/// let id = handle.id();
/// handle.await?;
/// let note = runner.drain_notifications().remove(0);
/// assert_eq!((note.id, note.call_id.as_str(), note.status), (id, "call_3", TaskStatus::Completed));
/// assert_eq!((note.summary.as_str(), note.truncated), ("a very lo…", true));
/// assert_eq!(runner.full_result(id).as_deref(), Some("a very long match"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Notification {
    /// The task.
    pub id: TaskId,
    /// Its call id: the model's tool call this answers.
    pub call_id: String,
    /// Its name.
    pub name: String,
    /// Its queue.
    pub queue: String,
    /// How it ended: `Completed`, `Failed` or `Cancelled`.
    pub status: TaskStatus,
    /// What it returned, or why it failed, cut to the runner's summary length. The whole
    /// text is kept by [`TaskRunner::full_result`](crate::TaskRunner::full_result).
    pub summary: String,
    /// Whether `summary` was cut.
    pub truncated: bool,
    /// When it finished.
    pub finished_at: SystemTime,
}

/// Undrained notifications, and the full texts behind their summaries.
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
    arrived: Notify,
    capacity: usize,
    summary_len: usize,
}

struct InboxState {
    pending: VecDeque<Notification>,
    /// Notifications dropped because the inbox was full.
    dropped: u64,
    /// Full texts of the last `capacity` notifications, by task.
    full: HashMap<TaskId, Arc<str>>,
    full_order: VecDeque<TaskId>,
}

impl Inbox {
    pub(crate) fn new(capacity: usize, summary_len: usize) -> Inbox {
        Inbox {
            state: Mutex::new(InboxState {
                pending: VecDeque::new(),
                dropped: 0,
                full: HashMap::new(),
                full_order: VecDeque::new(),
            }),
            arrived: Notify::new(),
            capacity: capacity.max(1),
            summary_len,
        }
    }

    /// Deposits a notification whose whole text is `text`. Past the capacity, the oldest
    /// undrained notification is dropped and counted.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn deposit(
        &self,
        id: TaskId,
        call_id: &str,
        name: &str,
        queue: &str,
        status: TaskStatus,
        text: String,
    ) {
        let (summary, truncated) = truncate(&text, self.summary_len);
        let notification = Notification {
            id,
            call_id: call_id.to_owned(),
            name: name.to_owned(),
            queue: queue.to_owned(),
            status,
            summary,
            truncated,
            finished_at: SystemTime::now(),
        };
        {
            let mut state = lock_std(&self.state);
            if state.pending.len() >= self.capacity {
                state.pending.pop_front();
                state.dropped += 1;
            }
            state.pending.push_back(notification);
            state.full.insert(id, text.into());
            state.full_order.push_back(id);
            while state.full_order.len() > self.capacity {
                if let Some(old) = state.full_order.pop_front() {
                    state.full.remove(&old);
                }
            }
        }
        self.arrived.notify_waiters();
    }

    pub(crate) fn drain(&self) -> Vec<Notification> {
        lock_std(&self.state).pending.drain(..).collect()
    }

    pub(crate) fn full_result(&self, id: TaskId) -> Option<Arc<str>> {
        lock_std(&self.state).full.get(&id).cloned()
    }

    /// How many characters of a result a summary keeps.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn summary_len(&self) -> usize {
        self.summary_len
    }

    pub(crate) fn dropped(&self) -> u64 {
        lock_std(&self.state).dropped
    }

    /// Resolves once at least one notification is waiting (at once if one is already).
    pub(crate) async fn notified(&self) {
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if !lock_std(&self.state).pending.is_empty() {
                return;
            }
            arrived.await;
        }
    }
}

/// `text` cut to at most `max` characters, the ellipsis that marks a cut included, on a
/// character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> (String, bool) {
    if text.char_indices().nth(max).is_none() {
        return (text.to_owned(), false);
    }
    match max.checked_sub(1) {
        // Keep `max - 1` characters and the ellipsis.
        Some(keep) => {
            let end = text
                .char_indices()
                .nth(keep)
                .map_or(text.len(), |(end, _)| end);
            (format!("{}…", &text[..end]), true)
        }
        None => (String::new(), true),
    }
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("hello", 10), ("hello".to_owned(), false));
        assert_eq!(truncate("hello", 5), ("hello".to_owned(), false));
        assert_eq!(truncate("hello world", 5), ("hell…".to_owned(), true));
        assert_eq!(truncate("héllo wörld", 4), ("hél…".to_owned(), true));
        assert_eq!(truncate("anything", 1), ("…".to_owned(), true));
        assert_eq!(truncate("anything", 0), (String::new(), true));
        assert_eq!(truncate("", 0), (String::new(), false));
        for max in 0..12 {
            let (cut, _) = truncate("héllo wörld, and more", max);
            assert!(cut.chars().count() <= max, "{cut:?} is over {max}");
        }
    }
}
