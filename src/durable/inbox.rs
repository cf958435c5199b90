//! The durable notification inbox: [`TaskRunner::drain_run_notifications`].

use super::Durable;
use crate::store::{RunNotification, RunStatus, StoreError};
use crate::TaskRunner;

/// The most notifications one drain takes from the store.
const DRAIN_BATCH: i64 = 1000;

impl TaskRunner {
    /// Takes the notifications of durable runs submitted with
    /// [`RunOptions::notify`](crate::RunOptions::notify) that have ended, from any process,
    /// oldest first (at most 1,000 a call): for an agent loop to read before its next model
    /// call, next to [`drain_notifications`](Self::drain_notifications) for in-process tasks.
    ///
    /// Each notification is handed to exactly one drainer, across every process sharing the
    /// store: it is deleted in the same transaction that returns it (`FOR UPDATE SKIP
    /// LOCKED` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite). Until drained it lives in the
    /// store, so nothing is lost when a process restarts; it is written by the same
    /// transaction that stores the run's end.
    ///
    /// It is `async` because it reads the store; [`drain_notifications`](Self::drain_notifications)
    /// stays synchronous and in-process (a background pull into that inbox would hand a
    /// notification to a process that may never drain it, or lose it if the process died
    /// before its agent read it).
    ///
    /// ```
    /// use taskrunner::store::SqliteStore;
    /// use taskrunner::{RunOptions, RunStatus, TaskContext, TaskDef, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("taskrunner-doc-drain-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let crawl = TaskDef::new("crawl", |_: TaskContext, url: String| async move {
    ///     Ok::<_, String>(format!("3 pages under {url}"))
    /// });
    /// let runner = TaskRunner::builder()
    ///     .store(SqliteStore::open(dir.join("runs.db")).await?)
    ///     .register(&crawl)
    ///     .build()?;
    /// let run = runner
    ///     .submit_with(&crawl, "https://example.com".to_owned(), RunOptions::new().notify().call_id("call_9"))
    ///     .await?;
    /// run.await?;
    /// let notes = runner.drain_run_notifications().await?;
    /// assert_eq!(notes.len(), 1);
    /// assert_eq!(notes[0].call_id.as_deref(), Some("call_9"));
    /// assert_eq!((notes[0].status, notes[0].summary.as_str()), (RunStatus::Completed, "3 pages under https://example.com"));
    /// assert!(runner.drain_run_notifications().await?.is_empty()); // once
    /// # runner.shutdown().await;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreError::NoStore`] without a store, [`StoreError::Database`] or [`StoreError::Unavailable`] if the store cannot
    /// be written (nothing is taken then).
    pub async fn drain_run_notifications(&self) -> Result<Vec<RunNotification>, StoreError> {
        let durable = Durable::of(&self.shared).ok_or(StoreError::NoStore)?;
        let max = self.shared.observers().inbox.summary_len();
        let taken = durable.store.take_notifications(DRAIN_BATCH).await?;
        Ok(taken
            .into_iter()
            .map(|n| {
                // A string output reads better bare than as a JSON literal.
                let text = match (n.status, serde_json::from_str::<String>(&n.text)) {
                    (RunStatus::Completed, Ok(bare)) => bare,
                    _ => n.text,
                };
                let (summary, truncated) = crate::observe::inbox::truncate(&text, max);
                RunNotification {
                    run_id: n.run_id,
                    call_id: n.call_id,
                    name: n.name,
                    queue: n.queue,
                    status: n.status,
                    summary,
                    truncated,
                    finished_at: n.finished_at,
                }
            })
            .collect())
    }
}
