//! Child runs on PostgreSQL (spawn and join are shared: `children_on!`,
//! `store/waits/children.rs`): the cancel of a run's tree.

use sqlx::{Postgres, Transaction};

use super::{PgStore, CANCEL_CHANNEL};
use crate::store::types::{CancelFound, RunId};
use crate::store::waits::children::tree;
use crate::store::StoreError;

impl PgStore {
    /// Cancels the unfinished runs under run `id`, in the caller's transaction: pending
    /// (waiting) ones at once, running ones by a stored intent. One statement takes each row
    /// in whichever state it is in when locked (a child that parks or is claimed meanwhile is
    /// still caught); it is repeated, each time with a fresh snapshot, until it finds nothing,
    /// so runs spawned by a tree member before its flag was set are caught too. A flagged run
    /// can neither park nor spawn (`holds` locks its row and requires no cancel pending).
    pub(super) async fn cancel_tree(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        id: RunId,
    ) -> Result<Vec<(RunId, CancelFound)>, StoreError> {
        let db = |e| self.db(e);
        let mut found = Vec::new();
        loop {
            let rows: Vec<(i64, String)> = sqlx::query_as(concat!(
                "UPDATE taskrunner_runs SET \
                 cancel_requested = cancel_requested OR status = 'running', \
                 error = CASE WHEN status = 'pending' THEN 'cancelled' ELSE error END, \
                 error_kind = CASE WHEN status = 'pending' THEN 'cancelled' ELSE error_kind END, \
                 finished_at = CASE WHEN status = 'pending' THEN taskrunner_now_ms() \
                   ELSE finished_at END, \
                 status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END \
                 WHERE id IN (",
                tree!(),
                ") AND (status = 'pending' OR (status = 'running' AND NOT cancel_requested)) \
                 RETURNING id, status"
            ))
            .bind(id.as_i64())
            .fetch_all(&mut **tx)
            .await
            .map_err(db)?;
            if rows.is_empty() {
                return Ok(found);
            }
            for (run, status) in rows {
                let run = RunId::from_i64(run);
                if status == "cancelled" {
                    found.push((run, CancelFound::Cancelled));
                } else {
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(CANCEL_CHANNEL)
                        .bind(run.to_string())
                        .execute(&mut **tx)
                        .await
                        .map_err(db)?;
                    found.push((run, CancelFound::Requested));
                }
            }
        }
    }
}
