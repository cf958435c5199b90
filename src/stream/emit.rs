//! [`TaskContext::emit`] and [`TaskContext::emit_live`]: what a handler says while it works,
//! and [`EmitError`].

use serde::Serialize;

use crate::observe::EventKind;
use crate::TaskContext;

/// The most JSON one emitted value may take: 256 KiB. Emit a reference (a step's name, a
/// file, a URL) to anything bigger.
pub const MAX_EMIT_BYTES: usize = 256 * 1024;

/// [`TaskContext::emit`] could not take a value. A handler's error type takes it with `?`
/// when it implements `From<EmitError>` (done here for `String`; `Box<dyn Error>` and
/// `anyhow::Error` take any error already).
///
/// ```
/// use taskrunner::{EmitError, MAX_EMIT_BYTES};
///
/// let e = EmitError::TooLarge { topic: "page".into(), size: 300_000, limit: MAX_EMIT_BYTES };
/// assert!(e.to_string().starts_with("emit `page`: the value is 300000 bytes of JSON"));
/// let as_string: String = e.into();
/// assert!(as_string.contains("page"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The value's JSON is over [`MAX_EMIT_BYTES`]. Nothing was emitted.
    #[error(
        "emit `{topic}`: the value is {size} bytes of JSON, over the limit of {limit} \
         (MAX_EMIT_BYTES): keep large data elsewhere (a step's output, a file) and emit a \
         reference to it"
    )]
    TooLarge {
        /// The topic.
        topic: String,
        /// The value's size as JSON, in bytes.
        size: usize,
        /// The limit, [`MAX_EMIT_BYTES`].
        limit: usize,
    },
    /// The value does not serialize to JSON. Nothing was emitted.
    #[error("emit `{topic}`: the value does not serialize to JSON: {reason}")]
    Serialize {
        /// The topic.
        topic: String,
        /// What serde said.
        reason: String,
    },
    /// The run's emits could not be stored (this one or one before it): the process lost
    /// the run, or the store refused the write. The attempt should end; the run's next
    /// attempt emits again from the first emit not stored.
    #[error("emit `{topic}`: {reason}")]
    Store {
        /// The topic.
        topic: String,
        /// What went wrong.
        reason: String,
    },
}

impl From<EmitError> for String {
    fn from(error: EmitError) -> String {
        error.to_string()
    }
}

impl TaskContext {
    /// Says `value` under `topic`, for whoever watches the run: the plan, a tool call, the
    /// answer.
    ///
    /// - In a durable run, it is stored at the run's next offset, and every process can read
    ///   it with [`TaskRunner::run_events`](crate::TaskRunner::run_events), now or after the
    ///   run ended. Emits are queued and committed in batches: all of them are committed
    ///   before the run's next [`step`](Self::step) starts and before its end is stored.
    /// - A retried or recovered attempt does not store an emit twice: the n-th emit of an
    ///   attempt is skipped if the run already stored an n-th emit (emit in the same order
    ///   on every attempt, as with steps).
    /// - In every task, durable or not, it also goes to the runner's event stream
    ///   ([`EventKind::Emitted`]), so one handler works in both modes.
    ///
    /// # Errors
    ///
    /// [`EmitError::TooLarge`] for a value over [`MAX_EMIT_BYTES`] of JSON,
    /// [`EmitError::Serialize`] for one that is not JSON, [`EmitError::Store`] if the run's
    /// emits could not be stored.
    ///
    /// ```
    /// use futures::StreamExt as _;
    /// use taskrunner::store::SqliteStore;
    /// use taskrunner::{RunEventKind, TaskContext, TaskDef, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("taskrunner-doc-emit-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let agent = TaskDef::new("agent", |ctx: TaskContext, topic: String| async move {
    ///     ctx.emit("plan", &["search", "summarize"]).await?;
    ///     ctx.emit_live("token", &"Hel");
    ///     Ok::<_, String>(format!("report on {topic}"))
    /// });
    /// let runner = TaskRunner::builder()
    ///     .store(SqliteStore::open(dir.join("runs.db")).await?)
    ///     .register(&agent)
    ///     .build()?;
    /// let run = runner.submit(&agent, "rust".to_owned()).await?;
    /// let id = run.id();
    /// run.await?;
    /// // After the run: the stored events replay, then the stream ends.
    /// let events: Vec<_> = runner.run_events(id).collect().await;
    /// let topics: Vec<String> = events.into_iter().filter_map(|e| match e.unwrap().kind {
    ///     RunEventKind::Emitted { topic, .. } => Some(topic),
    ///     _ => None,
    /// }).collect();
    /// assert_eq!(topics, ["plan"]);   // the live token was for readers reading then
    /// # runner.shutdown().await;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn emit<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        value: &T,
    ) -> Result<(), EmitError> {
        let json = to_json(topic, value)?;
        self.report(|| EventKind::Emitted {
            topic: topic.to_owned(),
            value: serde_json::from_str(&json).unwrap_or_default(),
            live: false,
        });
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        if let Some(scope) = crate::durable::current_run() {
            scope
                .emits
                .emit(topic, json)
                .await
                .map_err(|e| EmitError::Store {
                    topic: topic.to_owned(),
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// Says `value` under `topic` to whoever watches right now, without storing it: for
    /// tokens of a streamed answer. Readers of the run's stream in this process get it, and
    /// on PostgreSQL readers in other processes too (values up to about 7.9 KB of JSON; a
    /// bigger one stays in this process); it goes to the runner's event stream as well.
    /// It is never replayed: a reader that connects later, or resumes, does not get it.
    ///
    /// A value that does not serialize, or is over [`MAX_EMIT_BYTES`], is dropped (with a
    /// `tracing` warning): a live event is best effort.
    ///
    /// ```
    /// use taskrunner::{EventKind, Task, TaskContext, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let mut events = runner.subscribe();
    /// runner.enqueue_task(Task::new("answer", |ctx: TaskContext| async move {
    ///     for token in ["Hel", "lo"] {
    ///         ctx.emit_live("token", &token);
    ///     }
    ///     Ok::<_, String>(())
    /// }))?.await?;
    /// let mut tokens = String::new();
    /// while let Some(event) = events.recv().await {
    ///     let event = event?;
    ///     if let EventKind::Emitted { value, live: true, .. } = &event.kind {
    ///         tokens.push_str(value.as_str().unwrap());
    ///     }
    ///     if event.kind.is_terminal() {
    ///         break;
    ///     }
    /// }
    /// assert_eq!(tokens, "Hello");
    /// # Ok(())
    /// # }
    /// ```
    pub fn emit_live<T: Serialize + ?Sized>(&self, topic: &str, value: &T) {
        let value: serde_json::Value =
            match to_json(topic, value).map(|json| serde_json::from_str(&json)) {
                Ok(Ok(value)) => value,
                Ok(Err(e)) => {
                    tracing::warn!(topic, "emit_live: dropped a value that is not JSON: {e}");
                    return;
                }
                Err(e) => {
                    tracing::warn!(topic, "emit_live: dropped: {e}");
                    return;
                }
            };
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        if let Some(scope) = crate::durable::current_run() {
            scope.emits.emit_live(topic, value.clone());
        }
        self.report(|| EventKind::Emitted {
            topic: topic.to_owned(),
            value,
            live: true,
        });
    }
}

/// `value` as JSON, at most [`MAX_EMIT_BYTES`].
fn to_json<T: Serialize + ?Sized>(topic: &str, value: &T) -> Result<String, EmitError> {
    let json = serde_json::to_string(value).map_err(|e| EmitError::Serialize {
        topic: topic.to_owned(),
        reason: e.to_string(),
    })?;
    if json.len() > MAX_EMIT_BYTES {
        return Err(EmitError::TooLarge {
            topic: topic.to_owned(),
            size: json.len(),
            limit: MAX_EMIT_BYTES,
        });
    }
    Ok(json)
}
