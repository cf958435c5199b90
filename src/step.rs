//! [`TaskContext::step`]: a piece of a durable run's handler whose result is stored once it
//! succeeds, so that a retried or recovered run does not do it again.

use std::fmt;
use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::TaskContext;

/// Why a durable [step](TaskContext::step) could not give back its result.
///
/// A step's own error is returned as it is; this covers what the store adds. A handler's
/// error type takes it with `?` when it implements `From<StepError>` (done here for `String`;
/// `Box<dyn Error>` and `anyhow::Error` take any error already).
///
/// ```
/// use taskrunner::StepError;
///
/// let e = StepError::LeaseLost { step: "search".into(), index: 2 };
/// assert!(e.to_string().starts_with("step `search` #2: this process lost the run"));
/// let as_string: String = e.into();
/// assert!(as_string.contains("search"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The step succeeded but its output does not serialize to JSON, so it cannot be stored
    /// (and the run cannot go on without running it again).
    #[error(
        "step `{step}` #{index}: its output does not serialize to JSON, so it cannot be \
         stored: {reason} (return a type that serde can serialize, such as a struct deriving \
         Serialize with string map keys)"
    )]
    Serialize {
        /// The step's name.
        step: String,
        /// Which call of that name in the run, from 0.
        index: u32,
        /// What serde said.
        reason: String,
    },
    /// The output stored by an earlier attempt no longer deserializes as the type asked for:
    /// the step's output type changed while the run was in flight. The step is not run again.
    #[error(
        "step `{step}` #{index}: its stored output no longer deserializes as `{type_name}`: \
         {reason} (the step's output type changed since the run stored it: keep the old \
         type readable, or give the changed step a new name)"
    )]
    Deserialize {
        /// The step's name.
        step: String,
        /// Which call of that name in the run, from 0.
        index: u32,
        /// The type asked for.
        type_name: &'static str,
        /// What serde said.
        reason: String,
    },
    /// This process no longer holds the run (its lease expired and another claim took it),
    /// so the step's result was not stored: the run goes on in the process that holds it.
    #[error(
        "step `{step}` #{index}: this process lost the run's claim (its lease expired and \
         another claim holds it), so the step's result was not stored"
    )]
    LeaseLost {
        /// The step's name.
        step: String,
        /// Which call of that name in the run, from 0.
        index: u32,
    },
    /// The store could not be read or written.
    #[error("step `{step}` #{index}: the durable store failed: {reason}")]
    Store {
        /// The step's name.
        step: String,
        /// Which call of that name in the run, from 0.
        index: u32,
        /// The store's error.
        reason: String,
    },
}

impl From<StepError> for String {
    fn from(error: StepError) -> String {
        error.to_string()
    }
}

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
