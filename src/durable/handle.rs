//! [`RunHandle`]: a durable run's typed result, whichever process runs it.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use super::Durable;
use crate::store::{Outcome, RunId, RunInfo, StoreError};
use crate::TaskError;

/// A future of a durable run's result, from [`TaskRunner::submit`](crate::TaskRunner::submit)
/// or [`TaskRunner::run_handle`](crate::TaskRunner::run_handle).
///
/// Await it for `Result<T, TaskError<String>>` (the error is the handler's error as its
/// `Display`, as stored). It resolves when the run ends in whichever process runs it: at once
/// when this process stores the end, otherwise when a poll of the store sees it (polls start
/// at 5 ms apart and back off to the runner's
/// [`poll_interval`](crate::TaskRunnerBuilder::poll_interval)).
///
/// Dropping it does not cancel the run; [`cancel`](Self::cancel) does.
///
/// ```
/// use taskrunner::store::SqliteStore;
/// use taskrunner::{TaskContext, TaskDef, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("taskrunner-doc-handle-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let double = TaskDef::new("double", |_: TaskContext, n: u64| async move { Ok::<_, String>(n * 2) });
/// let runner = TaskRunner::builder()
///     .store(SqliteStore::open(dir.join("runs.db")).await?)
///     .register(&double)
///     .build()?;
/// let run = runner.submit(&double, 21).await?;
/// let id = run.id();                       // keep it: any process can poll it later
/// assert_eq!(run.await?, 42);
/// assert_eq!(runner.run_handle::<u64>(id)?.await?, 42);
/// # runner.shutdown().await;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[must_use = "a RunHandle does nothing unless awaited; dropping it does not cancel the run"]
pub struct RunHandle<T> {
    id: RunId,
    durable: Arc<Durable>,
    wait: Option<BoxFuture<'static, Result<T, TaskError<String>>>>,
    /// Submitted here: the hand-over of its outcome, registered at once, so that a run that
    /// ends before the handle is first awaited is not looked for in the store.
    fresh: Option<oneshot::Receiver<Outcome>>,
    types: PhantomData<fn() -> T>,
}

impl<T> RunHandle<T> {
    pub(crate) fn new(id: RunId, durable: Arc<Durable>) -> Self {
        RunHandle {
            id,
            durable,
            wait: None,
            fresh: None,
            types: PhantomData,
        }
    }

    pub(crate) fn fresh(mut self) -> Self {
        self.fresh = Some(self.durable.watch(self.id));
        self
    }

    /// The run's id.
    pub fn id(&self) -> RunId {
        self.id
    }

    /// The run's record now, or `None` if it was pruned.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] if the store cannot be read.
    pub async fn info(&self) -> Result<Option<RunInfo>, StoreError> {
        self.durable.store.run_info(self.id).await
    }

    /// Cancels the run (see [`TaskRunner::cancel_run`](crate::TaskRunner::cancel_run)).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] if the store cannot be written.
    pub async fn cancel(&self) -> Result<bool, StoreError> {
        self.durable.cancel(self.id).await
    }
}

impl<T: DeserializeOwned + Send + 'static> Future for RunHandle<T> {
    type Output = Result<T, TaskError<String>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let wait = this.wait.get_or_insert_with(|| {
            Box::pin(wait(Arc::clone(&this.durable), this.id, this.fresh.take()))
        });
        wait.as_mut().poll(cx)
    }
}

impl<T> fmt::Debug for RunHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunHandle").field("id", &self.id).finish()
    }
}

async fn wait<T: DeserializeOwned>(
    durable: Arc<Durable>,
    id: RunId,
    mut fresh: Option<oneshot::Receiver<Outcome>>,
) -> Result<T, TaskError<String>> {
    // A handle dropped while waiting leaves no entry behind.
    let _unwatch = Unwatch(Arc::clone(&durable), id);
    let mut delay = Duration::from_millis(5);
    // A handle made for a run by its id (not at its submit) may be handed the end of an
    // earlier attempt of a run retried since: the store says which end is current.
    let by_id = fresh.is_none();
    loop {
        // A run submitted here: its hand-over was registered at the submit, so it holds
        // the outcome if the run already ended; wait for it or the first poll delay before
        // asking the store.
        let (handed, polled) = match fresh.take() {
            Some(handed) => (handed, Ok(Some(Outcome::pending()))),
            None => (durable.watch(id), durable.store.outcome(id).await),
        };
        match polled {
            Ok(Some(outcome)) if is_terminal(&outcome) => {
                durable.unwatch(id);
                return convert(id, outcome);
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                durable.unwatch(id);
                return Err(TaskError::Failed(format!(
                    "run {id} is not in the store: it was pruned, or submitted to another store"
                )));
            }
            Err(e) => tracing::warn!(run = %id, "polling the run failed, retrying: {e}"),
        }
        tokio::select! {
            outcome = handed => if let Ok(outcome) = outcome {
                if !by_id {
                    return convert(id, outcome);
                }
                if let Ok(Some(current)) = durable.store.outcome(id).await {
                    if is_terminal(&current) {
                        durable.unwatch(id);
                        return convert(id, current);
                    }
                }
            },
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(durable.poll);
    }
}

impl<T> Drop for RunHandle<T> {
    fn drop(&mut self) {
        if self.fresh.take().is_some() {
            self.durable.unwatch(self.id); // never awaited: its hand-over is not kept
        }
    }
}

struct Unwatch(Arc<Durable>, RunId);

impl Drop for Unwatch {
    fn drop(&mut self) {
        self.0.unwatch(self.1);
    }
}

fn is_terminal(outcome: &Outcome) -> bool {
    matches!(
        outcome.status.as_str(),
        "completed" | "failed" | "cancelled"
    )
}

pub(crate) fn convert<T: DeserializeOwned>(
    id: RunId,
    outcome: Outcome,
) -> Result<T, TaskError<String>> {
    let error = || outcome.error.clone().unwrap_or_default();
    match (outcome.status.as_str(), outcome.error_kind.as_deref()) {
        ("completed", _) => serde_json::from_str(outcome.output.as_deref().unwrap_or("null"))
            .map_err(|e| {
                TaskError::Failed(format!(
                    "run {id}'s output does not deserialize as `{}`: {e}",
                    std::any::type_name::<T>()
                ))
            }),
        ("cancelled", _) => Err(TaskError::Cancelled),
        (_, Some("timed_out")) => Err(TaskError::TimedOut),
        (_, Some("panicked")) => Err(TaskError::Panicked(
            error().trim_start_matches("panicked: ").to_owned(),
        )),
        _ => Err(TaskError::Failed(error())),
    }
}
