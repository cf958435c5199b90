//! The waits' statements and transactions, written once for every backend (`waits_on!`,
//! expanded by each backend's `dialect.rs`): the fence on the run's claim, the recorded
//! waits, the parking write, a signal's wait, a durable sleep and a signal's send. Each
//! runs on the connection of the caller's write (SQLite: a group commit on the one writer;
//! PostgreSQL: a transaction that locked the run's row first).

/// Reads wait (`$1` run, `$2` kind, `$3` name, `$4` idx): `until_at, done, value`.
pub(crate) const WAIT_RECORD: &str = "SELECT until_at, done, value FROM taskrunner_waits \
     WHERE run_id = $1 AND kind = $2 AND name = $3 AND idx = $4";

/// Consumes the oldest kept signal `$2` of run `$1` at `$3`, returning its `value`.
pub(crate) const CONSUME_SIGNAL: &str = "UPDATE taskrunner_signals SET consumed_at = $3 \
     WHERE id = (SELECT id FROM taskrunner_signals \
       WHERE run_id = $1 AND name = $2 AND consumed_at IS NULL ORDER BY id LIMIT 1) \
     RETURNING value";

/// Keeps signal `$2` = `$3` for run `$1`, sent at `$4`.
pub(crate) const KEEP_SIGNAL: &str =
    "INSERT INTO taskrunner_signals (run_id, name, value, sent_at) VALUES ($1, $2, $3, $4)";

/// Makes run `$2`, waiting for a signal, due at `$1`.
pub(crate) const SIGNAL_DUE: &str =
    "UPDATE taskrunner_runs SET scheduled_at = $1, wait_kind = NULL WHERE id = $2";

/// Whether claim `$2` holds run `$1` (running, no cancel pending): the store's time if it
/// does (`$now`: the clock's text; `$lock`: what locks the row).
macro_rules! holds_run {
    ($now:literal, $lock:literal) => {
        concat!(
            "SELECT ",
            $now,
            " FROM taskrunner_runs WHERE id = $1 AND claim_token = $2 \
             AND status = 'running' AND NOT cancel_requested",
            $lock
        )
    };
}
pub(crate) use holds_run;

/// Writes wait (`$1` run, `$2` kind, `$3` name, `$4` idx): `$5` until, `$6` done, `$7`
/// value, created at `$now`.
macro_rules! write_wait {
    ($now:literal) => {
        concat!(
            "INSERT INTO taskrunner_waits (run_id, kind, name, idx, until_at, done, value, \
               created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, ",
            $now,
            ") ON CONFLICT (run_id, kind, name, idx) DO UPDATE SET until_at = excluded.until_at, \
               done = excluded.done, value = excluded.value"
        )
    };
}
pub(crate) use write_wait;

/// Parks run `$5` under claim `$6`: `pending`, due at `$1`, waiting for `$2` (`$3` signal,
/// `$4` children), no lease, this attempt not counted (`$max`: the backend's `max`).
macro_rules! park_run {
    ($max:literal) => {
        concat!(
            "UPDATE taskrunner_runs SET status = 'pending', scheduled_at = $1, wait_kind = $2, \
             wait_signal = $3, wait_children = $4, lease_owner = NULL, lease_expires_at = NULL, \
             attempts = ",
            $max,
            "(attempts - 1, 0) WHERE id = $5 AND claim_token = $6 AND status = 'running'"
        )
    };
}
pub(crate) use park_run;

/// Reads run `$1` for a signal (`status, queue, wait_kind, wait_signal, scheduled_at, now`),
/// locked until commit where the backend locks rows.
macro_rules! signaled_run {
    ($now:literal, $lock:literal) => {
        concat!(
            "SELECT status, queue, wait_kind, wait_signal, scheduled_at, ",
            $now,
            " AS now FROM taskrunner_runs WHERE id = $1",
            $lock
        )
    };
}
pub(crate) use signaled_run;

/// A recorded wait: its stored time, whether it is over, and its value.
pub(crate) struct Record {
    pub(crate) until: Option<i64>,
    pub(crate) done: bool,
    pub(crate) value: Option<String>,
}

/// The waits of store `$store` (a [`Dialect`](crate::store::dialect::Dialect)), on the
/// connection of the caller's write.
macro_rules! waits_on {
    ($store:ty) => {
        type WaitConn =
            <<$store as $crate::store::dialect::Dialect>::Db as sqlx::Database>::Connection;

        impl $store {
            /// The store's time if claim `token` holds run `id` (running, no cancel
            /// pending), its row locked where the backend locks rows.
            pub(super) async fn holds(
                &self,
                conn: &mut WaitConn,
                id: $crate::store::RunId,
                token: i64,
            ) -> Result<Option<i64>, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                $crate::store::dialect::bind_now!(
                    self.bound_now(),
                    sqlx::query_scalar(<Self as $crate::store::dialect::Dialect>::HOLDS_RUN)
                        .bind(id.as_i64())
                        .bind(token)
                )
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| self.error(e))
            }

            pub(super) async fn record(
                &self,
                conn: &mut WaitConn,
                id: $crate::store::RunId,
                kind: &str,
                name: &str,
                idx: i32,
            ) -> Result<Option<$crate::store::waits::sql::Record>, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::dialect::Dialect as _;
                let row = sqlx::query($crate::store::waits::sql::WAIT_RECORD)
                    .bind(id.as_i64())
                    .bind(kind)
                    .bind(name)
                    .bind(idx)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(|e| self.error(e))?;
                row.map(|row| {
                    Ok($crate::store::waits::sql::Record {
                        until: row.try_get("until_at")?,
                        done: row.try_get("done")?,
                        value: row.try_get("value")?,
                    })
                })
                .transpose()
                .map_err(|e| self.error(e))
            }

            /// Writes wait (`kind`, `name`, `idx`) of run `id`, replacing what it held.
            #[allow(clippy::too_many_arguments)]
            pub(super) async fn write_record(
                &self,
                conn: &mut WaitConn,
                id: $crate::store::RunId,
                kind: &str,
                name: &str,
                idx: i32,
                until: Option<i64>,
                done: bool,
                value: Option<&str>,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                $crate::store::dialect::bind_now!(
                    self.bound_now(),
                    sqlx::query(<Self as $crate::store::dialect::Dialect>::WRITE_WAIT)
                        .bind(id.as_i64())
                        .bind(kind)
                        .bind(name)
                        .bind(idx)
                        .bind(until)
                        .bind(done)
                        .bind(value)
                )
                .execute(&mut *conn)
                .await
                .map_err(|e| self.error(e))?;
                Ok(())
            }

            /// Parks run `id`: `pending`, due at `until`, its lease given back and this
            /// attempt not counted (the claim that resumes it counts it again).
            #[allow(clippy::too_many_arguments)]
            pub(super) async fn park(
                &self,
                conn: &mut WaitConn,
                id: $crate::store::RunId,
                token: i64,
                until: i64,
                kind: &str,
                signal: Option<&str>,
                children: i32,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                sqlx::query(<Self as $crate::store::dialect::Dialect>::PARK_RUN)
                    .bind(until)
                    .bind(kind)
                    .bind(signal)
                    .bind(children)
                    .bind(id.as_i64())
                    .bind(token)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| self.error(e))?;
                Ok(())
            }

            /// The `idx`-th wait for signal `name` of run `id`, on the caller's write.
            pub(crate) async fn wait_signal_in(
                &self,
                conn: &mut WaitConn,
                id: $crate::store::RunId,
                token: i64,
                name: &str,
                idx: i32,
                timeout_ms: i64,
            ) -> Result<$crate::store::waits::WaitStep, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                use $crate::store::waits::WaitStep;
                let Some(now) = self.holds(conn, id, token).await? else {
                    return Ok(WaitStep::Fenced);
                };
                let until = match self.record(conn, id, "signal", name, idx).await? {
                    Some(r) if r.done => return Ok(WaitStep::Ready(r.value)),
                    Some(r) => r.until.unwrap_or(now),
                    None => {
                        let until = now.saturating_add(timeout_ms);
                        self.write_record(conn, id, "signal", name, idx, Some(until), false, None)
                            .await?;
                        until
                    }
                };
                let kept: Option<String> =
                    sqlx::query_scalar($crate::store::waits::sql::CONSUME_SIGNAL)
                        .bind(id.as_i64())
                        .bind(name)
                        .bind(now)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(|e| self.error(e))?;
                let step = if let Some(value) = kept {
                    self.write_record(
                        conn,
                        id,
                        "signal",
                        name,
                        idx,
                        Some(until),
                        true,
                        Some(&value),
                    )
                    .await?;
                    WaitStep::Ready(Some(value))
                } else if until <= now {
                    self.write_record(conn, id, "signal", name, idx, Some(until), true, None)
                        .await?;
                    WaitStep::Ready(None)
                } else {
                    self.park(conn, id, token, until, "signal", Some(name), 0)
                        .await?;
                    WaitStep::Parked
                };
                Ok(step)
            }

            /// The `idx`-th durable sleep of run `id`, on the caller's write.
            pub(crate) async fn wait_sleep_in(
                &self,
                conn: &mut WaitConn,
                id: $crate::store::RunId,
                token: i64,
                idx: i32,
                wake: $crate::store::waits::Wake,
            ) -> Result<$crate::store::waits::WaitStep, $crate::store::StoreError> {
                use $crate::store::waits::{WaitStep, Wake};
                let Some(now) = self.holds(conn, id, token).await? else {
                    return Ok(WaitStep::Fenced);
                };
                let until = match self.record(conn, id, "sleep", "", idx).await? {
                    Some(r) if r.done => return Ok(WaitStep::Ready(None)),
                    Some(r) => r.until.unwrap_or(now),
                    None => match wake {
                        Wake::After(ms) => now.saturating_add(ms),
                        Wake::At(at) => at,
                    },
                };
                let done = until <= now;
                self.write_record(conn, id, "sleep", "", idx, Some(until), done, None)
                    .await?;
                if done {
                    return Ok(WaitStep::Ready(None));
                }
                self.park(conn, id, token, until, "sleep", None, 0).await?;
                Ok(WaitStep::Parked)
            }

            /// Keeps `value` in run `id`'s mailbox for signal `name` and makes the run due
            /// if it waits for it, on the caller's write.
            pub(crate) async fn signal_in(
                &self,
                conn: &mut WaitConn,
                id: $crate::store::RunId,
                name: &str,
                value: &str,
            ) -> Result<$crate::store::waits::SignalSent, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::dialect::Dialect as _;
                use $crate::store::waits::SignalSent;
                let db = |e| self.error(e);
                let row = $crate::store::dialect::bind_now!(
                    self.bound_now(),
                    sqlx::query(<Self as $crate::store::dialect::Dialect>::SIGNALED_RUN)
                        .bind(id.as_i64())
                )
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?;
                let Some(row) = row else {
                    return Ok(SignalSent::Unknown);
                };
                let status: String = row.try_get("status").map_err(db)?;
                if matches!(status.as_str(), "completed" | "failed" | "cancelled") {
                    return Ok(SignalSent::Finished(status));
                }
                let queue: String = row.try_get("queue").map_err(db)?;
                let kind: Option<String> = row.try_get("wait_kind").map_err(db)?;
                let awaited: Option<String> = row.try_get("wait_signal").map_err(db)?;
                let due: i64 = row.try_get("scheduled_at").map_err(db)?;
                let now: i64 = row.try_get("now").map_err(db)?;
                sqlx::query($crate::store::waits::sql::KEEP_SIGNAL)
                    .bind(id.as_i64())
                    .bind(name)
                    .bind(value)
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .map_err(db)?;
                if status == "pending"
                    && kind.as_deref() == Some("signal")
                    && awaited.as_deref() == Some(name)
                    && due > now
                {
                    sqlx::query($crate::store::waits::sql::SIGNAL_DUE)
                        .bind(now)
                        .bind(id.as_i64())
                        .execute(&mut *conn)
                        .await
                        .map_err(db)?;
                    if let Some(notify) = <Self as $crate::store::dialect::Dialect>::NOTIFY_QUEUE {
                        sqlx::query(notify)
                            .bind(&queue)
                            .execute(&mut *conn)
                            .await
                            .map_err(db)?;
                    }
                }
                Ok(SignalSent::Sent { queue })
            }
        }
    };
}
pub(crate) use waits_on;
