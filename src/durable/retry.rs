//! [`TaskRunner::retry_run`]: a failed or cancelled run runs again, and
//! [`DurableSchedule::trigger`](super::DurableSchedule::trigger)'s run now.

use super::Durable;
use crate::store::{RunId, StoreError};
use crate::TaskRunner;

impl TaskRunner {
    /// Runs a failed or cancelled run again: same id, back to `Pending`, its error and end
    /// cleared, its attempts counted on from where they were, with its retries again (its
    /// completed [steps](crate::TaskContext::step) are kept, so they do not run twice). Any
    /// process that registered its definition claims it. Returns `false` if the run does not
    /// exist or has not failed or been cancelled.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use taskrunner::store::SqliteStore;
    /// use taskrunner::{TaskContext, TaskDef, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("taskrunner-retry-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// static CALLS: AtomicU32 = AtomicU32::new(0);
    /// let flaky = TaskDef::new("flaky", |_: TaskContext, _: ()| async {
    ///     match CALLS.fetch_add(1, Ordering::SeqCst) {
    ///         0 => Err("down".to_string()),
    ///         n => Ok(n + 1),
    ///     }
    /// });
    /// let runner = TaskRunner::builder()
    ///     .store(SqliteStore::open(dir.join("runs.db")).await?)
    ///     .register(&flaky)
    ///     .build()?;
    /// let run = runner.submit(&flaky, ()).await?;
    /// let id = run.id();
    /// assert!(run.await.is_err()); // its one attempt failed
    /// assert!(runner.retry_run(id).await?);
    /// assert_eq!(runner.run_handle::<u32>(id)?.await?, 2); // the second call succeeded
    /// assert_eq!(runner.run_info(id).await?.unwrap().attempts, 2);
    /// # runner.shutdown().await;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreError::NoStore`] without a store, [`StoreError::Database`] or [`StoreError::Unavailable`] if it cannot be
    /// written (a run whose deduplication key another unfinished run holds cannot run again).
    pub async fn retry_run(&self, id: RunId) -> Result<bool, StoreError> {
        let durable = Durable::of(&self.shared).ok_or(StoreError::NoStore)?;
        match durable.store.retry_run(id).await? {
            Some(queue) => {
                tracing::info!(run = %id, queue = %queue, "run put back to pending to run again");
                durable.wake_queue(&queue);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
