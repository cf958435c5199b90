//! Durable sleeps: [`TaskContext::sleep`] and [`TaskContext::sleep_until`].

use std::time::{Duration, SystemTime};

use super::without_slot;
use crate::error::StepError;
use crate::TaskContext;

impl TaskContext {
    /// Sleeps for `duration`. In a durable run the wake time is stored at the first call
    /// (a run resumed after a restart sleeps only what is left) and the run is
    /// [`Waiting`](crate::RunStatus::Waiting) meanwhile, holding no slot, no
    /// `global_concurrency` place and no lease; it is claimed again at the wake time and its
    /// handler runs again from the top, its steps replayed. In an in-process task it sleeps
    /// in memory, giving back the task's slot.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let started = tokio::time::Instant::now();
    /// let task = runner.enqueue_task(Task::new("follow_up", |ctx: TaskContext| async move {
    ///     ctx.sleep(Duration::from_secs(3600)).await?;
    ///     Ok::<_, String>("sent the follow-up")
    /// }))?;
    /// assert_eq!(task.await?, "sent the follow-up");
    /// assert!(started.elapsed() >= Duration::from_secs(3600));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn sleep(&self, duration: Duration) -> Result<(), StepError> {
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        if let Some(scope) = crate::durable::current_run() {
            let wake = crate::store::Wake::After(crate::store::duration_ms(duration));
            return crate::durable::wait::sleep(&scope, wake).await;
        }
        without_slot(self, tokio::time::sleep(duration)).await;
        Ok(())
    }

    /// Sleeps until `wake_at` (wall-clock time), as [`sleep`](Self::sleep) does; a time
    /// already past returns at once.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use taskrunner::{Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let wake_at = SystemTime::now() + Duration::from_millis(20);
    /// let task = runner.enqueue_task(Task::new("later", move |ctx: TaskContext| async move {
    ///     ctx.sleep_until(wake_at).await?;
    ///     Ok::<_, String>(SystemTime::now() >= wake_at)
    /// }))?;
    /// assert!(task.await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn sleep_until(&self, wake_at: SystemTime) -> Result<(), StepError> {
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        if let Some(scope) = crate::durable::current_run() {
            let ms = wake_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, crate::store::duration_ms);
            return crate::durable::wait::sleep(&scope, crate::store::Wake::At(ms)).await;
        }
        let left = wake_at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        without_slot(self, tokio::time::sleep(left)).await;
        Ok(())
    }
}
