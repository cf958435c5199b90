//! Durable steps in the store: [`StepInfo`] as [`RunInfo::steps`](super::RunInfo::steps)
//! shows them, and the fenced reads and writes behind
//! [`TaskContext::step`](crate::TaskContext::step), written once for every backend
//! (`steps_on!`, expanded by each backend's `dialect.rs`).

use std::time::SystemTime;

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::types::{to_time, RunId};
use super::{Backend, Store, StoreError};

/// Where a durable step is, as [`RunInfo::steps`](super::RunInfo::steps) shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StepStatus {
    /// It returned `Ok`: its output is stored, and later attempts of the run get it back
    /// without running the step again.
    Completed,
    /// Its last run returned `Err` (nothing stored but the message): the run's next attempt
    /// runs it again.
    Failed,
}

/// One step of a durable run, from [`RunInfo::steps`](super::RunInfo::steps): how far an
/// agent run got.
///
/// ```
/// use taskrunner::store::{SqliteStore, StepStatus};
/// use taskrunner::{TaskContext, TaskDef, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("taskrunner-doc-stepinfo-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let agent = TaskDef::new("agent", |ctx: TaskContext, topic: String| async move {
///     let plan: String = ctx.step("plan", || async { Ok::<_, String>(format!("plan {topic}")) }).await?;
///     Ok::<_, String>(plan)
/// });
/// let runner = TaskRunner::builder()
///     .store(SqliteStore::open(dir.join("runs.db")).await?)
///     .register(&agent)
///     .build()?;
/// let run = runner.submit(&agent, "rust".to_owned()).await?;
/// let id = run.id();
/// run.await?;
/// let info = runner.run_info(id).await?.unwrap();
/// assert_eq!(info.steps.len(), 1);
/// assert_eq!((info.steps[0].name.as_str(), info.steps[0].index), ("plan", 0));
/// assert_eq!(info.steps[0].status, StepStatus::Completed);
/// # runner.shutdown().await;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StepInfo {
    /// The name given to [`TaskContext::step`](crate::TaskContext::step).
    pub name: String,
    /// Which call of that name in the run, from 0 (a step called in a loop has one index a
    /// turn).
    pub index: u32,
    /// Whether it completed.
    pub status: StepStatus,
    /// How many times it ran (a failed step runs again on the run's next attempt).
    pub attempts: u32,
    /// When it first started.
    pub started_at: SystemTime,
    /// When it last finished.
    pub finished_at: SystemTime,
    /// Its stored output, as JSON, once completed.
    pub output: Option<serde_json::Value>,
    /// Why its last run failed (cleared once it completes).
    pub error: Option<String>,
}

/// A step's end, to be written only while the writer's claim holds the run.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct StepWrite<'a> {
    /// The run.
    pub run: RunId,
    /// The claim token the writer holds.
    pub token: i64,
    /// The step's name.
    pub name: &'a str,
    /// Which call of that name, from 0.
    pub index: i32,
    /// The output as JSON for a completed step; `None` for a failed one.
    pub output: Option<&'a str>,
    /// The failure's message, for a failed one.
    pub error: Option<&'a str>,
    /// How long the step ran, in milliseconds.
    pub elapsed_ms: i64,
}

impl StepWrite<'_> {
    pub(crate) fn status(&self) -> &'static str {
        if self.output.is_some() {
            "completed"
        } else {
            "failed"
        }
    }
}

pub(crate) fn step_info<'r, R>(row: &'r R) -> Result<StepInfo, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let status: String = row.try_get("status")?;
    let output: Option<String> = row.try_get("output")?;
    Ok(StepInfo {
        name: row.try_get("name")?,
        index: row.try_get::<i32, _>("idx")?.max(0) as u32,
        status: if status == "completed" {
            StepStatus::Completed
        } else {
            StepStatus::Failed
        },
        attempts: row.try_get::<i32, _>("attempts")?.max(0) as u32,
        started_at: to_time(row.try_get("started_at")?),
        finished_at: to_time(row.try_get("finished_at")?),
        output: output.and_then(|text| serde_json::from_str(&text).ok()),
        error: row.try_get("error")?,
    })
}

impl Store {
    /// The stored output (JSON) of step `name`#`index` of run `id`, if it completed.
    #[doc(hidden)]
    pub async fn load_step(
        &self,
        id: RunId,
        name: &str,
        index: i32,
    ) -> Result<Option<String>, StoreError> {
        let name = super::types::clean_text(name);
        dispatch!(self, s => s.load_step(id, &name, index).await)
    }

    /// Writes a step's end, only while `step.token` is the run's claim token and the run
    /// is running; says whether it was written. A completed step is never overwritten.
    #[doc(hidden)]
    ///
    /// Safe to retry: a write that finds the completed step its own claim (same token)
    /// already stored reports it written, so a retry after a lost answer succeeds.
    pub async fn save_step(&self, step: &StepWrite<'_>) -> Result<bool, StoreError> {
        use super::types::clean_text;
        let name = clean_text(step.name);
        let error = step.error.map(clean_text);
        let step = StepWrite {
            name: &name,
            error: error.as_deref(),
            ..step.clone()
        };
        dispatch!(self, s => s.save_step(&step).await)
    }

    /// Run `id`'s steps, in the order they were first stored: for steps run one after
    /// another, the order they ran.
    pub(crate) async fn steps(&self, id: RunId) -> Result<Vec<StepInfo>, StoreError> {
        dispatch!(self, s => s.steps(id).await)
    }
}

/// Whether step `name`#`index` of run `run` is stored completed by the claim `token`.
pub(crate) const OWN_STEP: &str = "SELECT count(*) FROM taskrunner_steps WHERE run_id = $1 \
     AND name = $2 AND idx = $3 AND status = 'completed' AND claim_token = $4";

/// A step's stored output, if it completed.
pub(crate) const LOAD_STEP: &str = "SELECT output FROM taskrunner_steps \
     WHERE run_id = $1 AND name = $2 AND idx = $3 AND status = 'completed'";

/// A run's steps, in the order they were first stored (`seq`; rows of a schema before 11
/// have 0 and keep the older order, by start time).
pub(crate) const STEPS: &str = "SELECT name, idx, status, attempts, started_at, finished_at, \
     output, error FROM taskrunner_steps WHERE run_id = $1 ORDER BY seq, started_at, name, idx";

/// The start of a step's write, the same on every backend: the columns written.
macro_rules! insert_step {
    () => {
        "INSERT INTO taskrunner_steps (run_id, name, idx, status, output, error, attempts, \
         claim_token, started_at, finished_at, seq) "
    };
}
pub(crate) use insert_step;

/// The last value of a step's write, the same on every backend: its place in the run's
/// order (one more than the run's highest; the upsert never changes it).
macro_rules! next_step_seq {
    () => {
        ", (SELECT coalesce(max(seq), 0) + 1 FROM taskrunner_steps WHERE run_id = $1)"
    };
}
pub(crate) use next_step_seq;

/// The end of a step's write, the same on every backend: a completed step is never
/// overwritten, a failed one is, counting its attempts.
macro_rules! upsert_step {
    () => {
        " ON CONFLICT (run_id, name, idx) DO UPDATE SET status = excluded.status, \
           output = excluded.output, error = excluded.error, \
           attempts = taskrunner_steps.attempts + 1, claim_token = excluded.claim_token, \
           finished_at = excluded.finished_at \
         WHERE taskrunner_steps.status <> 'completed'"
    };
}
pub(crate) use upsert_step;

/// The durable steps of store `$store` (a [`Dialect`](super::dialect::Dialect)).
macro_rules! steps_on {
    ($store:ty) => {
        impl $store {
            pub(crate) async fn load_step(
                &self,
                id: $crate::store::RunId,
                name: &str,
                index: i32,
            ) -> Result<Option<String>, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                let output: Option<Option<String>> =
                    sqlx::query_scalar($crate::store::steps::LOAD_STEP)
                        .bind(id.as_i64())
                        .bind(name)
                        .bind(index)
                        .fetch_optional(self.reads())
                        .await
                        .map_err(|e| self.error(e))?;
                Ok(output.map(|o| o.unwrap_or_else(|| "null".to_owned())))
            }

            pub(crate) async fn save_step(
                &self,
                step: &$crate::store::StepWrite<'_>,
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                let mut one = self.one().await?;
                // The run is checked and the step written in one statement (SQLite: inside
                // `BEGIN IMMEDIATE`; PostgreSQL: holding the run's row `FOR SHARE`): no
                // claim can take the run in between.
                let done = $crate::store::dialect::bind_now!(
                    self.bound_now(),
                    sqlx::query(<Self as $crate::store::dialect::Dialect>::SAVE_STEP)
                        .bind(step.run.as_i64())
                        .bind(step.token)
                        .bind(step.name)
                        .bind(step.index)
                        .bind(step.status())
                        .bind(step.output)
                        .bind(step.error)
                        .bind(step.elapsed_ms)
                )
                .execute(&mut *one)
                .await
                .map_err(|e| self.error(e))?;
                // Refused: a completed step is never overwritten. If it is this claim's own
                // (a retry after the answer to its write was lost), the write is done.
                let written = done.rows_affected() == 1
                    || (step.output.is_some()
                        && sqlx::query_scalar::<_, i64>($crate::store::steps::OWN_STEP)
                            .bind(step.run.as_i64())
                            .bind(step.name)
                            .bind(step.index)
                            .bind(step.token)
                            .fetch_one(&mut *one)
                            .await
                            .map_err(|e| self.error(e))?
                            == 1);
                self.done(one).await?;
                Ok(written)
            }

            pub(crate) async fn steps(
                &self,
                id: $crate::store::RunId,
            ) -> Result<Vec<$crate::store::StepInfo>, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                let rows = sqlx::query($crate::store::steps::STEPS)
                    .bind(id.as_i64())
                    .fetch_all(self.reads())
                    .await
                    .map_err(|e| self.error(e))?;
                rows.iter()
                    .map($crate::store::steps::step_info)
                    .collect::<Result<_, _>>()
                    .map_err(|e| self.error(e))
            }
        }
    };
}
pub(crate) use steps_on;
