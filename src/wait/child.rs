//! Child runs: [`TaskContext::spawn`], [`TaskContext::join`], [`TaskContext::join_all`], and
//! [`Joinable`], what they join (a durable run's [`RunHandle`] or a task's
//! [`TaskHandle`]).

use std::future::Future;

use futures::future::BoxFuture;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use serde::de::DeserializeOwned;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use serde::Serialize;

use super::without_slot;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::durable::RunHandle;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::error::StepError;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::TaskDef;
use crate::{TaskContext, TaskError, TaskHandle};

/// What [`TaskContext::join`] and [`TaskContext::join_all`] wait for: a durable run's
/// [`RunHandle`] (a child from [`TaskContext::spawn`], or any run) or an in-process task's
/// [`TaskHandle`]. Its `Output` is the handle's result: a child's failure is a value the
/// parent handles.
pub trait Joinable: Send + Sized + 'static {
    /// The joined result.
    type Output: Send + 'static;

    /// Waits for all of `handles` from inside `ctx`'s handler.
    #[doc(hidden)]
    fn join_all_in(ctx: &TaskContext, handles: Vec<Self>) -> BoxFuture<'_, Vec<Self::Output>>;
}

impl<T: Send + 'static, E: Send + 'static> Joinable for TaskHandle<T, E> {
    type Output = Result<T, TaskError<E>>;

    fn join_all_in(ctx: &TaskContext, handles: Vec<Self>) -> BoxFuture<'_, Vec<Self::Output>> {
        Box::pin(without_slot(ctx, futures::future::join_all(handles)))
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl<T: DeserializeOwned + Send + 'static> Joinable for RunHandle<T> {
    type Output = Result<T, TaskError<String>>;

    fn join_all_in(ctx: &TaskContext, handles: Vec<Self>) -> BoxFuture<'_, Vec<Self::Output>> {
        Box::pin(async move {
            let Some(scope) = crate::durable::current_run() else {
                return without_slot(ctx, futures::future::join_all(handles)).await;
            };
            let ids: Vec<_> = handles.iter().map(RunHandle::id).collect();
            match crate::durable::wait::join(&scope, &ids).await {
                Ok(outcomes) => ids
                    .into_iter()
                    .zip(outcomes)
                    .map(|(id, outcome)| crate::durable::convert(id, outcome))
                    .collect(),
                Err(e) => ids
                    .iter()
                    .map(|_| Err(TaskError::Failed(e.to_string())))
                    .collect(),
            }
        })
    }
}

impl TaskContext {
    /// Submits a durable run of `def` on `input` as a child of this run, and returns its
    /// handle: the child's id is recorded like a step, so a replay of the parent gets the same
    /// child back instead of spawning another. The child runs in its own queue like any run
    /// ([`RunInfo::parent`](crate::RunInfo::parent) names this run; cancelling this run
    /// cancels it). Wait for it with [`join`](Self::join) or [`join_all`](Self::join_all),
    /// which give back this run's slot while they wait, so a parent and its children on one
    /// `concurrency(1)` queue complete.
    ///
    /// # Errors
    ///
    /// [`StepError::NotDurable`] outside a durable run; [`StepError::Store`] if the store
    /// failed; [`StepError::Serialize`] if `input` does not serialize.
    ///
    /// ```
    /// use taskrunner::store::SqliteStore;
    /// use taskrunner::{RunHandle, TaskContext, TaskDef, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("taskrunner-doc-spawn-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let research = TaskDef::new("research", |_: TaskContext, topic: String| async move {
    ///     Ok::<_, String>(format!("notes on {topic}"))
    /// });
    /// let child = research.clone();
    /// let team = TaskDef::new("team", move |ctx: TaskContext, topics: Vec<String>| {
    ///     let child = child.clone();
    ///     async move {
    ///         let mut handles: Vec<RunHandle<String>> = Vec::new();
    ///         for topic in topics {
    ///             handles.push(ctx.spawn(&child, topic).await?);
    ///         }
    ///         let notes: Result<Vec<String>, _> = ctx.join_all(handles).await.into_iter().collect();
    ///         notes.map_err(|e| e.to_string())
    ///     }
    /// });
    /// let runner = TaskRunner::builder()
    ///     .queue("main", taskrunner::QueueConfig::new().concurrency(1))
    ///     .store(SqliteStore::open(dir.join("runs.db")).await?)
    ///     .register(&research)
    ///     .register(&team)
    ///     .poll_interval(std::time::Duration::from_millis(20))
    ///     .build()?;
    /// let run = runner.submit(&team, vec!["rust".to_owned(), "tokio".to_owned()]).await?;
    /// assert_eq!(run.await?, vec!["notes on rust", "notes on tokio"]);
    /// # runner.shutdown().await;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
    pub async fn spawn<H, I, Fut, T, E>(
        &self,
        def: &TaskDef<H>,
        input: I,
    ) -> Result<RunHandle<T>, StepError>
    where
        H: Fn(TaskContext, I) -> Fut,
        I: Serialize,
        Fut: Future<Output = Result<T, E>>,
        T: DeserializeOwned + Send + 'static,
    {
        let Some(scope) = crate::durable::current_run() else {
            return Err(StepError::NotDurable { what: "spawn" });
        };
        let input = serde_json::to_string(&input).map_err(|e| StepError::Serialize {
            step: format!("spawn(\"{}\")", def.name()),
            index: 0,
            reason: e.to_string(),
        })?;
        let max_attempts = def
            .retry_policy()
            .map_or(1, |p| p.retries().saturating_add(1));
        let child = crate::store::NewRun {
            name: def.name().to_owned(),
            queue: def.queue_name().to_owned(),
            priority: def.priority_value(),
            input,
            max_attempts: i32::try_from(max_attempts).unwrap_or(i32::MAX),
            delay_ms: 0,
            dedup_key: None,
            call_id: None,
            notify: false,
            cost: None,
        };
        let id = crate::durable::wait::spawn(&scope, child).await?;
        Ok(RunHandle::new(id, std::sync::Arc::clone(&scope.durable)))
    }

    /// Waits for `handle`'s result, giving back this task's slot (and, in a durable run,
    /// its `global_concurrency` place and lease: the run is
    /// [`Waiting`](crate::RunStatus::Waiting) until the child ends, then resumes from the top
    /// with the child's recorded result). A child's failure is an `Err` the parent handles.
    ///
    /// ```
    /// use taskrunner::{QueueConfig, Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::builder().queue("tools", QueueConfig::new().concurrency(2)).build()?;
    /// let inner = runner.clone();
    /// let parent = runner.enqueue_task(Task::new("parent", move |ctx: TaskContext| {
    ///     let runner = inner.clone();
    ///     async move {
    ///         let child = runner
    ///             .enqueue_task(Task::new("child", |_| async { Ok::<_, String>(21) }).queue("tools"))
    ///             .map_err(|e| e.to_string())?;
    ///         let n = ctx.join(child).await.map_err(|e| e.to_string())?;
    ///         Ok::<_, String>(n * 2)
    ///     }
    /// }))?;
    /// assert_eq!(parent.await?, 42);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn join<J: Joinable>(&self, handle: J) -> J::Output {
        let mut all = J::join_all_in(self, vec![handle]).await;
        match all.pop() {
            Some(output) => output,
            None => unreachable!("join_all_in gives one output a handle"),
        }
    }

    /// Waits for every one of `handles`, as [`join`](Self::join) does, and gives their
    /// results in the same order. In a durable run one wait covers all of them: the run is
    /// claimed again once the last one ends.
    pub fn join_all<J: Joinable>(
        &self,
        handles: Vec<J>,
    ) -> impl Future<Output = Vec<J::Output>> + '_ {
        J::join_all_in(self, handles)
    }
}
