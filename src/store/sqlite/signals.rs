//! Waits on SQLite: the mailbox of signals, durable sleeps, and the fenced write that parks a
//! run. Each is one `BEGIN IMMEDIATE` transaction: SQLite has one writer, so a signal and the
//! wait that would miss it cannot interleave.

use sqlx::{Row, Sqlite, SqliteConnection, Transaction};

use super::{db, SqliteStore};
use crate::store::types::RunId;
use crate::store::waits::{SignalSent, WaitStep, Wake};
use crate::store::StoreError;

pub(super) type Tx = Transaction<'static, Sqlite>;

/// A recorded wait: its stored time, whether it is over, and its value.
pub(super) struct Record {
    pub(super) until: Option<i64>,
    pub(super) done: bool,
    pub(super) value: Option<String>,
}

/// Whether claim `token` holds run `id` (running, no cancel pending).
pub(super) async fn holds(
    conn: &mut SqliteConnection,
    id: RunId,
    token: i64,
) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM taskrunner_runs WHERE id = $1 AND claim_token = $2 \
         AND status = 'running' AND NOT cancel_requested",
    )
    .bind(id.as_i64())
    .bind(token)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    Ok(found.is_some())
}

pub(super) async fn record(
    conn: &mut SqliteConnection,
    id: RunId,
    kind: &str,
    name: &str,
    idx: i32,
) -> Result<Option<Record>, StoreError> {
    let row = sqlx::query(
        "SELECT until_at, done, value FROM taskrunner_waits \
         WHERE run_id = $1 AND kind = $2 AND name = $3 AND idx = $4",
    )
    .bind(id.as_i64())
    .bind(kind)
    .bind(name)
    .bind(idx)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    row.map(|row| {
        Ok(Record {
            until: row.try_get("until_at")?,
            done: row.try_get("done")?,
            value: row.try_get("value")?,
        })
    })
    .transpose()
    .map_err(db)
}

/// Writes wait (`kind`, `name`, `idx`) of run `id`, replacing what it held.
#[allow(clippy::too_many_arguments)]
pub(super) async fn write_record(
    conn: &mut SqliteConnection,
    id: RunId,
    kind: &str,
    name: &str,
    idx: i32,
    until: Option<i64>,
    done: bool,
    value: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO taskrunner_waits (run_id, kind, name, idx, until_at, done, value, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (run_id, kind, name, idx) DO UPDATE SET until_at = excluded.until_at, \
           done = excluded.done, value = excluded.value",
    )
    .bind(id.as_i64())
    .bind(kind)
    .bind(name)
    .bind(idx)
    .bind(until)
    .bind(done)
    .bind(value)
    .bind(crate::store::types::now_ms())
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Parks run `id`: `pending`, due at `until`, its lease given back and this attempt not
/// counted (the claim that resumes it counts it again).
pub(super) async fn park(
    conn: &mut SqliteConnection,
    id: RunId,
    token: i64,
    until: i64,
    kind: &str,
    signal: Option<&str>,
    children: i32,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE taskrunner_runs SET status = 'pending', scheduled_at = $1, wait_kind = $2, \
         wait_signal = $3, wait_children = $4, lease_owner = NULL, lease_expires_at = NULL, \
         attempts = max(attempts - 1, 0) \
         WHERE id = $5 AND claim_token = $6 AND status = 'running'",
    )
    .bind(until)
    .bind(kind)
    .bind(signal)
    .bind(children)
    .bind(id.as_i64())
    .bind(token)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

impl SqliteStore {
    pub(crate) async fn wait_signal(
        &self,
        id: RunId,
        token: i64,
        name: &str,
        idx: i32,
        timeout_ms: i64,
    ) -> Result<WaitStep, StoreError> {
        let (store, name) = (self.clone(), name.to_owned());
        self.grouped(move |conn| {
            Box::pin(async move {
                store
                    .wait_signal_in(conn, id, token, &name, idx, timeout_ms)
                    .await
            })
        })
        .await
    }

    async fn wait_signal_in(
        &self,
        conn: &mut SqliteConnection,
        id: RunId,
        token: i64,
        name: &str,
        idx: i32,
        timeout_ms: i64,
    ) -> Result<WaitStep, StoreError> {
        let now = self.now();
        if !holds(conn, id, token).await? {
            return Ok(WaitStep::Fenced);
        }
        let until = match record(conn, id, "signal", name, idx).await? {
            Some(r) if r.done => {
                return Ok(WaitStep::Ready(r.value));
            }
            Some(r) => r.until.unwrap_or(now),
            None => {
                let until = now.saturating_add(timeout_ms);
                write_record(conn, id, "signal", name, idx, Some(until), false, None).await?;
                until
            }
        };
        let kept = sqlx::query(
            "SELECT id, value FROM taskrunner_signals \
             WHERE run_id = $1 AND name = $2 AND consumed_at IS NULL ORDER BY id LIMIT 1",
        )
        .bind(id.as_i64())
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        let step = if let Some(row) = kept {
            let signal: i64 = row.try_get("id").map_err(db)?;
            let value: String = row.try_get("value").map_err(db)?;
            sqlx::query("UPDATE taskrunner_signals SET consumed_at = $1 WHERE id = $2")
                .bind(now)
                .bind(signal)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            write_record(
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
            write_record(conn, id, "signal", name, idx, Some(until), true, None).await?;
            WaitStep::Ready(None)
        } else {
            park(conn, id, token, until, "signal", Some(name), 0).await?;
            WaitStep::Parked
        };
        Ok(step)
    }

    pub(crate) async fn wait_sleep(
        &self,
        id: RunId,
        token: i64,
        idx: i32,
        wake: Wake,
    ) -> Result<WaitStep, StoreError> {
        let store = self.clone();
        self.grouped(move |conn| {
            Box::pin(async move { store.wait_sleep_in(conn, id, token, idx, wake).await })
        })
        .await
    }

    async fn wait_sleep_in(
        &self,
        conn: &mut SqliteConnection,
        id: RunId,
        token: i64,
        idx: i32,
        wake: Wake,
    ) -> Result<WaitStep, StoreError> {
        let now = self.now();
        if !holds(conn, id, token).await? {
            return Ok(WaitStep::Fenced);
        }
        let until = match record(conn, id, "sleep", "", idx).await? {
            Some(r) if r.done => {
                return Ok(WaitStep::Ready(None));
            }
            Some(r) => r.until.unwrap_or(now),
            None => match wake {
                Wake::After(ms) => now.saturating_add(ms),
                Wake::At(at) => at,
            },
        };
        let step = if until <= now {
            write_record(conn, id, "sleep", "", idx, Some(until), true, None).await?;
            WaitStep::Ready(None)
        } else {
            write_record(conn, id, "sleep", "", idx, Some(until), false, None).await?;
            park(conn, id, token, until, "sleep", None, 0).await?;
            WaitStep::Parked
        };
        Ok(step)
    }

    pub(crate) async fn signal(
        &self,
        id: RunId,
        name: &str,
        value: &str,
    ) -> Result<SignalSent, StoreError> {
        let (store, name, value) = (self.clone(), name.to_owned(), value.to_owned());
        self.grouped(move |conn| {
            Box::pin(async move { store.signal_in(conn, id, &name, &value).await })
        })
        .await
    }

    async fn signal_in(
        &self,
        conn: &mut SqliteConnection,
        id: RunId,
        name: &str,
        value: &str,
    ) -> Result<SignalSent, StoreError> {
        let now = self.now();
        let row = sqlx::query(
            "SELECT status, queue, wait_kind, wait_signal, scheduled_at FROM taskrunner_runs \
             WHERE id = $1",
        )
        .bind(id.as_i64())
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
        sqlx::query(
            "INSERT INTO taskrunner_signals (run_id, name, value, sent_at) VALUES ($1, $2, $3, $4)",
        )
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
            sqlx::query(
                "UPDATE taskrunner_runs SET scheduled_at = $1, wait_kind = NULL WHERE id = $2",
            )
            .bind(now)
            .bind(id.as_i64())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        }
        Ok(SignalSent::Sent { queue })
    }
}
