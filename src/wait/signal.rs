//! Signals: [`TaskContext::wait_for_signal`], [`TaskRunner::signal`] (a durable run, from any
//! process) and [`TaskRunner::signal_task`] (an in-process task).

use std::any::Any;
use std::time::Duration;

use serde::de::DeserializeOwned;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use serde::Serialize;

use super::mailbox::{self, Sent};
use super::{without_slot, SignalError};
use crate::error::StepError;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::store::RunId;
use crate::{TaskContext, TaskId, TaskRunner};

// ===== impl TaskContext =====

impl TaskContext {
    /// Waits for the signal `name` sent to this run (or task), at most `timeout`:
    /// `Ok(Some(value))` for a signal, `Ok(None)` once the deadline passed without one.
    ///
    /// - A signal sent before the wait is kept and taken by it; several signals of one name
    ///   are taken in the order they were sent, each by one wait.
    /// - In a durable run the wait is recorded like a step: the deadline is fixed at the
    ///   first wait (a run resumed after a restart waits only what is left), and a replay gets
    ///   the same value. While it waits the run is
    ///   [`Waiting`](crate::RunStatus::Waiting): it holds no slot, no `global_concurrency`
    ///   place and no lease, and no process needs to be running; it is claimed again when
    ///   the signal comes or the deadline passes, and its handler runs again from the top.
    /// - A durable run waits for one thing at a time: a wait (signal, `sleep`, `join`)
    ///   started while another of the same run is in progress (say, a `tokio::select!` of two
    ///   `wait_for_signal`s) fails at once with [`StepError::ConcurrentWait`] ("one wait at a
    ///   time in a run"). To wait for either of two outcomes, wait for one signal name and
    ///   tell them apart by its value.
    /// - In an in-process task it waits in memory (for [`TaskRunner::signal_task`]).
    /// - A value that is not a `T` is a [`StepError::SignalType`], not a panic.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let task = runner.enqueue_task(Task::new("send_email", |ctx: TaskContext| async move {
    ///     let ok: Option<bool> = ctx.wait_for_signal("approve", Duration::from_secs(3600)).await?;
    ///     Ok::<_, String>(if ok == Some(true) { "sent" } else { "not sent" })
    /// }))?;
    /// runner.signal_task(task.id(), "approve", true)?;
    /// assert_eq!(task.await?, "sent");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_for_signal<T>(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<T>, StepError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        if let Some(scope) = crate::durable::current_run() {
            let (json, index) = crate::durable::wait::wait_signal(&scope, name, timeout).await?;
            return json
                .map(|json| {
                    serde_json::from_str(&json).map_err(|e| StepError::SignalType {
                        signal: name.to_owned(),
                        index,
                        type_name: std::any::type_name::<T>(),
                        reason: e.to_string(),
                    })
                })
                .transpose();
        }
        without_slot(self, receive(self.task_id(), name, timeout)).await
    }
}

/// The next signal `name` of in-process task `task`, or `None` after `timeout`.
async fn receive<T: 'static>(
    task: TaskId,
    name: &str,
    timeout: Duration,
) -> Result<Option<T>, StepError> {
    let deadline = tokio::time::Instant::now().checked_add(timeout);
    loop {
        match mailbox::take(task, name) {
            Ok(sent) => {
                return sent
                    .value
                    .downcast::<T>()
                    .map(|value| Some(*value))
                    .map_err(|_| StepError::SignalType {
                        signal: name.to_owned(),
                        index: 0,
                        type_name: std::any::type_name::<T>(),
                        reason: format!("`signal_task` sent a `{}`", sent.type_name),
                    });
            }
            Err(notify) => match deadline {
                Some(deadline) => tokio::select! {
                    () = notify.notified() => {}
                    () = tokio::time::sleep_until(deadline) => return Ok(None),
                },
                None => notify.notified().await,
            },
        }
    }
}

// ===== impl TaskRunner =====

impl TaskRunner {
    /// Sends the signal `name` with `value` to durable run `run`, from any process that
    /// shares its store: kept in the run's mailbox until a
    /// [`wait_for_signal`](TaskContext::wait_for_signal) of that name takes it (in order,
    /// each once), and the run, if it waits for it, is made due at once.
    ///
    /// # Errors
    ///
    /// [`SignalError::UnknownRun`] if the store has no such run, [`SignalError::RunFinished`]
    /// if it has ended (a signal is never dropped silently), [`SignalError::Serialize`],
    /// [`SignalError::NoStore`], [`SignalError::Store`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::store::SqliteStore;
    /// use taskrunner::{TaskContext, TaskDef, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("taskrunner-doc-signal-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let approval = TaskDef::new("approval", |ctx: TaskContext, to: String| async move {
    ///     let ok: Option<bool> = ctx.wait_for_signal("approve", Duration::from_secs(86_400)).await?;
    ///     Ok::<_, String>(format!("{to}: {}", if ok == Some(true) { "sent" } else { "dropped" }))
    /// });
    /// let runner = TaskRunner::builder()
    ///     .store(SqliteStore::open(dir.join("runs.db")).await?)
    ///     .register(&approval)
    ///     .build()?;
    /// let run = runner.submit(&approval, "ana@example.com".to_owned()).await?;
    /// runner.signal(run.id(), "approve", &true).await?;
    /// assert_eq!(run.await?, "ana@example.com: sent");
    /// # runner.shutdown().await;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
    pub async fn signal<V: Serialize + ?Sized>(
        &self,
        run: RunId,
        name: &str,
        value: &V,
    ) -> Result<(), SignalError> {
        use crate::store::SignalSent;
        let name_ = || name.to_owned();
        let durable = crate::durable::Durable::of(&self.shared)
            .ok_or_else(|| SignalError::NoStore { run, name: name_() })?;
        let json = serde_json::to_string(value).map_err(|e| SignalError::Serialize {
            run,
            name: name_(),
            reason: e.to_string(),
        })?;
        match durable.store.signal(run, name, &json).await {
            Ok(SignalSent::Sent { queue }) => {
                durable.wake_queue(&queue);
                Ok(())
            }
            Ok(SignalSent::Unknown) => Err(SignalError::UnknownRun { run, name: name_() }),
            Ok(SignalSent::Finished(status)) => Err(SignalError::RunFinished {
                run,
                name: name_(),
                status,
            }),
            Err(e) => Err(SignalError::Store {
                run,
                name: name_(),
                reason: e.to_string(),
            }),
        }
    }

    /// Sends the signal `name` with `value` to in-process task `task` of this runner: kept
    /// until a [`wait_for_signal`](TaskContext::wait_for_signal) of that name in the task
    /// takes it (in order, each once). The value need not be serde: it is handed over as is,
    /// and a wait for another type gets a [`StepError::SignalType`].
    ///
    /// # Errors
    ///
    /// [`SignalError::UnknownTask`] if this runner has no such task,
    /// [`SignalError::TaskFinished`] if it has ended.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskrunner::{Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let task = runner.enqueue_task(Task::new("collect", |ctx: TaskContext| async move {
    ///     let mut got = Vec::new();
    ///     while let Some(n) = ctx.wait_for_signal::<u32>("n", Duration::from_secs(1)).await? {
    ///         got.push(n);
    ///     }
    ///     Ok::<_, String>(got)
    /// }))?;
    /// runner.signal_task(task.id(), "n", 1_u32)?;
    /// runner.signal_task(task.id(), "n", 2_u32)?;
    /// assert_eq!(task.await?, vec![1, 2]);   // in order, then the deadline
    /// # Ok(())
    /// # }
    /// ```
    pub fn signal_task<V: Any + Send>(
        &self,
        task: TaskId,
        name: &str,
        value: V,
    ) -> Result<(), SignalError> {
        let finished = |id| self.get_status(id).is_some_and(|i| i.status.is_terminal());
        match self.get_status(task) {
            None => {
                return Err(SignalError::UnknownTask {
                    task,
                    name: name.to_owned(),
                })
            }
            Some(info) if info.status.is_terminal() => {
                mailbox::sweep(finished);
                return Err(SignalError::TaskFinished {
                    task,
                    name: name.to_owned(),
                });
            }
            Some(_) => {}
        }
        mailbox::sweep(finished);
        mailbox::deposit(
            task,
            name,
            Sent {
                value: Box::new(value),
                type_name: std::any::type_name::<V>(),
            },
        );
        Ok(())
    }
}
