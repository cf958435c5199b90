//! The runner's event stream and notification inbox.

use std::future::Future;
use std::sync::Arc;

use super::TaskRunner;
use crate::id::TaskId;
use crate::observe::{EventStream, Notification};

impl TaskRunner {
    /// A stream of every task's [`Event`](crate::Event)s from now on: enqueued, started,
    /// retrying, progress, and exactly one terminal event a task. A slow subscriber never
    /// slows the runner; one that falls behind is told how many events it missed.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use taskrunner::{EventKind, Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let mut events = runner.subscribe();
    /// let handle = runner.enqueue_task(Task::new("hello", |_: TaskContext| async { Ok::<_, String>(()) }))?;
    /// let kinds: Vec<EventKind> = events.by_ref().take(3).map(|e| e.unwrap().kind).collect().await;
    /// assert_eq!(kinds, [EventKind::Enqueued, EventKind::Started { attempt: 1 }, EventKind::Completed]);
    /// handle.await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe(&self) -> EventStream {
        self.shared.observers.events.subscribe()
    }

    /// Takes every waiting [`Notification`], oldest first, without blocking: what an agent
    /// loop reads before its next model call.
    ///
    /// ```
    /// use taskrunner::{Task, TaskRunner, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let tests = runner.enqueue_task(
    ///     Task::new("run_tests", |_ctx| async { Ok::<_, String>("42 passed") })
    ///         .call_id("call_7")
    ///         .notify(),
    /// )?;
    /// tests.await?;
    /// // Before the next model call: tell the model what finished.
    /// for note in runner.drain_notifications() {
    ///     assert_eq!((note.call_id.as_str(), note.status), ("call_7", TaskStatus::Completed));
    ///     assert_eq!(note.summary, "\"42 passed\"");
    /// }
    /// assert!(runner.drain_notifications().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn drain_notifications(&self) -> Vec<Notification> {
        self.shared.observers.inbox.drain()
    }

    /// Resolves once a notification is waiting (at once if one already is): lets an idle
    /// agent sleep until background work finishes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{Task, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let build = runner.enqueue_task(Task::new("build", |_ctx| async {
    ///     tokio::time::sleep(Duration::from_secs(30)).await;
    ///     Ok::<_, String>("built")
    /// }).notify())?;
    /// drop(build); // the agent does not await it; it waits for any news instead
    /// runner.notified().await;
    /// assert_eq!(runner.drain_notifications()[0].name, "build");
    /// # Ok(())
    /// # }
    /// ```
    pub fn notified(&self) -> impl Future<Output = ()> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move { shared.observers.inbox.notified().await }
    }

    /// The whole text behind a notification's summary, while the inbox keeps it (the last
    /// [`notification_capacity`](crate::TaskRunnerBuilder::notification_capacity) notifications).
    pub fn full_result(&self, id: TaskId) -> Option<String> {
        self.shared
            .observers
            .inbox
            .full_result(id)
            .map(|text| text.to_string())
    }

    /// How many notifications were dropped, oldest first, because the inbox was full.
    pub fn notifications_dropped(&self) -> u64 {
        self.shared.observers.inbox.dropped()
    }
}
