//! Waits on PostgreSQL: the shared waits (`waits_on!`, `store/waits/sql.rs`) each in one
//! transaction. A wait and a signal both lock the run's row first (`FOR UPDATE`), so a signal
//! sent while a run parks is either seen by the wait or finds the run parked and makes it due.

use sqlx::{Postgres, Transaction};

use super::PgStore;
use crate::store::types::RunId;
use crate::store::waits::{SignalSent, WaitStep, Wake};
use crate::store::StoreError;

pub(super) type Tx = Transaction<'static, Postgres>;

impl PgStore {
    pub(super) async fn begin(&self) -> Result<Tx, StoreError> {
        self.inner.pool.begin().await.map_err(|e| self.db(e))
    }

    /// Commits `tx` if `wrote`, else rolls it back (it only read and locked).
    async fn end(&self, tx: Tx, wrote: bool) -> Result<(), StoreError> {
        if wrote {
            tx.commit().await
        } else {
            tx.rollback().await
        }
        .map_err(|e| self.db(e))
    }

    pub(crate) async fn wait_signal(
        &self,
        id: RunId,
        token: i64,
        name: &str,
        idx: i32,
        timeout_ms: i64,
    ) -> Result<WaitStep, StoreError> {
        let mut tx = self.begin().await?;
        let step = self
            .wait_signal_in(&mut tx, id, token, name, idx, timeout_ms)
            .await?;
        self.end(tx, step != WaitStep::Fenced).await?;
        Ok(step)
    }

    pub(crate) async fn wait_sleep(
        &self,
        id: RunId,
        token: i64,
        idx: i32,
        wake: Wake,
    ) -> Result<WaitStep, StoreError> {
        let mut tx = self.begin().await?;
        let step = self.wait_sleep_in(&mut tx, id, token, idx, wake).await?;
        self.end(tx, step != WaitStep::Fenced).await?;
        Ok(step)
    }

    pub(crate) async fn signal(
        &self,
        id: RunId,
        name: &str,
        value: &str,
    ) -> Result<SignalSent, StoreError> {
        let mut tx = self.begin().await?;
        let sent = self.signal_in(&mut tx, id, name, value).await?;
        self.end(tx, matches!(sent, SignalSent::Sent { .. }))
            .await?;
        Ok(sent)
    }
}
