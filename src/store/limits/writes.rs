//! What a durable handler writes for its queue's global limits: a charge
//! ([`TaskContext::charge`](crate::TaskContext::charge)), replacing its attempt's row in
//! `taskrunner_charges` so the next claims see it, and a pause
//! ([`TaskContext::pause_queue_for`](crate::TaskContext::pause_queue_for)), the queue's row in
//! `taskrunner_queue_pauses` that every claim reads. Written once for both backends
//! (`limits_on!`), like the other capabilities of `store/dialect.rs`.

use crate::store::{Backend, RunId, Store, StoreError};

/// One attempt's charge, as the store writes it.
#[derive(Debug, Clone)]
pub(crate) struct Charge {
    pub(crate) run: RunId,
    pub(crate) token: i64,
    /// The attempt's number (the run's `attempts` when it started).
    pub(crate) attempt: i32,
    pub(crate) queue: String,
    /// What the attempt cost, all told.
    pub(crate) units: i64,
    /// How much that adds to the run's `charged` (the attempt's last charge, or the
    /// estimate its claim reserved, replaced).
    pub(crate) delta: i64,
    /// Whether the queue has a global budget (its window gets the charge).
    pub(crate) budgeted: bool,
}

/// Queue `$1` paused until `$2` ms after now, unless a later pause is stored; returns the
/// stored end.
macro_rules! pause_queue {
    ($now:literal) => {
        concat!(
            "INSERT INTO taskrunner_queue_pauses (queue, until_at) VALUES ($1, ",
            $now,
            " + $2) ON CONFLICT (queue) DO UPDATE SET until_at = CASE \
               WHEN excluded.until_at > taskrunner_queue_pauses.until_at THEN excluded.until_at \
               ELSE taskrunner_queue_pauses.until_at END \
             RETURNING until_at"
        )
    };
}

/// Attempt `$4` of run `$2` under claim `$3`, of queue `$1`, cost `$5` units: its row in the
/// window, counted from its claim (or from now, if its claim reserved nothing or its row has
/// aged out).
macro_rules! charge_row {
    ($now:literal) => {
        concat!(
            "INSERT INTO taskrunner_charges (queue, run_id, token, attempt, at, units) \
             VALUES ($1, $2, $3, $4, ",
            $now,
            ", $5) ON CONFLICT (run_id, token, attempt) DO UPDATE SET units = excluded.units"
        )
    };
}

/// Adds `$3` to run `$1`'s `charged`, if claim `$2` still holds it.
const CHARGE_RUN: &str = "UPDATE taskrunner_runs SET charged = coalesce(charged, 0) + $3 \
     WHERE id = $1 AND claim_token = $2 AND status = 'running'";

/// The end of queue `$1`'s stored pause, if any.
const PAUSED_UNTIL: &str = "SELECT until_at FROM taskrunner_queue_pauses WHERE queue = $1";

macro_rules! limits_on {
    ($store:ty, pause = $pause:expr, charge = $charge:expr) => {
        impl $store {
            /// Pauses `queue` for `ms` from now (a later stored pause stays); the end.
            pub(crate) async fn pause_queue(
                &self,
                queue: &str,
                ms: i64,
            ) -> Result<i64, StoreError> {
                use crate::store::dialect::{bind_now, Dialect as _};
                let mut one = self.one().await?;
                let until: i64 = bind_now!(
                    self.bound_now(),
                    sqlx::query_scalar($pause).bind(queue).bind(ms)
                )
                .fetch_one(&mut *one)
                .await
                .map_err(|e| self.error(e))?;
                self.done(one).await?;
                Ok(until)
            }

            /// Writes `charge`, fenced by its claim: `false` if the claim no longer holds
            /// the run (nothing written).
            pub(crate) async fn charge(&self, charge: &Charge) -> Result<bool, StoreError> {
                use crate::store::dialect::{bind_now, Dialect as _};
                let db = |e| self.error(e);
                let mut tx = self.begin_write().await?;
                let held = sqlx::query(CHARGE_RUN)
                    .bind(charge.run.as_i64())
                    .bind(charge.token)
                    .bind(charge.delta)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?
                    .rows_affected()
                    == 1;
                if held && charge.budgeted {
                    bind_now!(
                        self.bound_now(),
                        sqlx::query($charge)
                            .bind(&charge.queue)
                            .bind(charge.run.as_i64())
                            .bind(charge.token)
                            .bind(charge.attempt)
                            .bind(charge.units)
                    )
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                }
                tx.commit().await.map_err(db)?;
                Ok(held)
            }

            /// The end of `queue`'s stored pause (past or not), if it has one.
            pub(crate) async fn paused_until(
                &self,
                queue: &str,
            ) -> Result<Option<i64>, StoreError> {
                use crate::store::dialect::Dialect as _;
                sqlx::query_scalar(PAUSED_UNTIL)
                    .bind(queue)
                    .fetch_optional(self.reads())
                    .await
                    .map_err(|e| self.error(e))
            }
        }
    };
}

#[cfg(feature = "sqlite")]
limits_on!(
    crate::store::SqliteStore,
    pause = pause_queue!("$3"),
    charge = charge_row!("$6")
);
#[cfg(feature = "postgres")]
limits_on!(
    crate::store::PgStore,
    pause = pause_queue!("taskrunner_now_ms()"),
    charge = charge_row!("taskrunner_now_ms()")
);

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match &$self.0 {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite($s) => $e,
            #[cfg(feature = "postgres")]
            Backend::Pg($s) => $e,
        }
    };
}

impl Store {
    /// Pauses `queue` in every process on this store for `ms` from now (the store's clock),
    /// unless a later pause is stored; returns the stored end (ms since the epoch).
    pub(crate) async fn pause_queue(&self, queue: &str, ms: i64) -> Result<i64, StoreError> {
        dispatch!(self, s => s.pause_queue(queue, ms).await)
    }

    /// Writes an attempt's charge, fenced by its claim (`false`: the claim is lost).
    pub(crate) async fn charge(&self, charge: &Charge) -> Result<bool, StoreError> {
        dispatch!(self, s => s.charge(charge).await)
    }

    /// Until when `queue` is paused in every process, if a pause is stored for it (it may
    /// have passed): what [`TaskContext::pause_queue_for`](crate::TaskContext::pause_queue_for)
    /// on a durable run wrote.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use taskrunner::store::SqliteStore;
    /// use taskrunner::{QueueConfig, TaskContext, TaskDef, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("taskrunner-pause-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let call = TaskDef::new("call", |ctx: TaskContext, _: ()| async move {
    ///     // The provider said 429, Retry-After: 30.
    ///     ctx.pause_queue_for(Duration::from_secs(30));
    ///     Err::<(), _>("rate limited")
    /// })
    /// .queue("llm");
    /// let runner = TaskRunner::builder()
    ///     .queue("llm", QueueConfig::new())
    ///     .store(SqliteStore::open(dir.join("runs.db")).await?)
    ///     .register(&call)
    ///     .build()?;
    /// assert!(runner.submit(&call, ()).await?.await.is_err());
    /// let store = runner.store().unwrap();
    /// let until = store.queue_paused_until("llm").await?.unwrap();
    /// assert!(until > SystemTime::now() + Duration::from_secs(20)); // no process claims before
    /// # runner.shutdown().await;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] if it cannot be read.
    pub async fn queue_paused_until(
        &self,
        queue: &str,
    ) -> Result<Option<std::time::SystemTime>, StoreError> {
        let until = dispatch!(self, s => s.paused_until(queue).await)?;
        Ok(until.map(crate::store::types::to_time))
    }
}
