//! Waits on SQLite: the shared waits (`waits_on!`, `store/waits/sql.rs`) each in one group
//! commit on the one writer, so a signal and the wait that would miss it cannot interleave.

use sqlx::{Sqlite, Transaction};

use super::SqliteStore;
use crate::store::types::RunId;
use crate::store::waits::{SignalSent, WaitStep, Wake};
use crate::store::StoreError;

pub(super) type Tx = Transaction<'static, Sqlite>;

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
}
