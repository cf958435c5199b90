//! [`TaskContext::step`]: a piece of a durable run's handler whose result is stored once it
//! succeeds, so that a retried or recovered run does not do it again.

use std::fmt;
use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::StepError;
use crate::TaskContext;

impl TaskContext {
    /// Runs `f` as the durable step `name` of this run: once it succeeds, its output is
    /// committed to the store before `step` returns, and a later attempt of the same run (a
    /// retry, or a recovery on another process after a crash) gets the stored output back
    /// without calling `f` again. Use it for every model call and tool call that costs money
    /// or has a side effect.
    ///
    /// - The n-th call of one `name` in a run is the n-th step of that name, so steps in a
    ///   loop work, as long as the handler calls them in the same order on every attempt.
    /// - A step that returns `Err` stores nothing (only its message, for
    ///   [`RunInfo::steps`](crate::RunInfo::steps)): the next attempt runs it again.
    /// - The write is fenced by the run's claim: a process that lost the run cannot store a
    ///   step ([`StepError::LeaseLost`]).
    /// - The output must be a serde type; one that does not serialize, or a stored output that
    ///   no longer deserializes as `T`, is a [`StepError`], never a panic.
    /// - Outside a durable run (an ordinary [`Task`](crate::Task), or a runner without a
    ///   store), `step` just runs `f`, so one handler works in both modes. Call steps from
    ///   the handler's own future: a task it spawns is outside the run.
    ///
    /// ```
    /// use taskrunner::{Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let handle = runner.enqueue_task(Task::new("agent", |ctx: TaskContext| async move {
    ///     let plan: Vec<String> = ctx
    ///         .step("plan", || async { Ok::<_, String>(vec!["a".into(), "b".into()]) })
    ///         .await?;
    ///     let mut found = Vec::new();
    ///     for query in plan {
    ///         // search #0, search #1: one step each.
    ///         found.push(ctx.step("search", || async move { Ok::<_, String>(format!("{query}!")) }).await?);
    ///     }
    ///     Ok::<_, String>(found.join(" "))
    /// }))?;
    /// assert_eq!(handle.await?, "a! b!");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn step<T, E, F, Fut>(&self, name: &str, f: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: Serialize + DeserializeOwned,
        E: From<StepError> + fmt::Display,
    {
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        if let Some(scope) = crate::durable::current_run() {
            return crate::durable::step::run(&scope, name, f).await;
        }
        let _ = name; // only a durable run stores steps by name
        f().await
    }
}
