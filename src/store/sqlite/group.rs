//! Group commit for the small writes of waiting runs (signals, waits, sleeps): SQLite has one
//! writer, and each commit with `synchronous = FULL` waits for the disk, so writes made at
//! the same time by many runs share one transaction and one sync. Each keeps its own
//! savepoint: one that fails is rolled back alone, the others commit. A caller is answered
//! only once the transaction holding its write committed; a caller that gave up before its
//! write ran has it skipped (or rolled back), as its own transaction would have been.
//!
//! Whoever finds no group under way starts one (a task of its own, so that a caller given
//! up never strands the others); it takes every write queued meanwhile, and repeats until
//! none is left.

use futures::future::BoxFuture;
use sqlx::SqliteConnection;
use tokio::sync::oneshot;

use super::{db, SqliteStore};
use crate::store::StoreError;
use crate::sync::lock_std;

/// The most writes one transaction takes.
const GROUP_MAX: usize = 256;

/// A queued write: runs on the group's connection; says whether to keep it and how to answer.
type Op = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Ran> + Send>;
/// Whether the write is kept (else rolled back to its savepoint), and its answer, given the
/// commit's outcome.
type Ran = (bool, Box<dyn FnOnce(Result<(), String>) + Send>);

/// The writes waiting for a group, and whether a group is under way.
#[derive(Default)]
pub(super) struct Group {
    state: std::sync::Mutex<(Vec<Op>, bool)>,
}

/// Ends the group's lead however its task ends (a runtime shutting down drops it): the
/// writes still queued are dropped, so their callers get an error instead of waiting.
struct Lead {
    store: SqliteStore,
    /// Ended by finding nothing left (the lead is given up under the lock): nothing to undo.
    done: bool,
}

impl Drop for Lead {
    fn drop(&mut self) {
        if !self.done {
            let mut state = lock_std(&self.store.inner.group.state);
            state.1 = false;
            state.0.clear();
        }
    }
}

impl SqliteStore {
    /// Runs `write` in a group commit: in a transaction shared with the writes queued at the
    /// same time, under a savepoint of its own (rolled back if it returns an error).
    pub(super) async fn grouped<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, StoreError>>();
        let op: Op = Box::new(move |conn| {
            Box::pin(async move {
                // A caller that gave up (its future dropped: a `select!`, a timeout) has its
                // write skipped, or rolled back, as its own transaction would have been.
                if tx.is_closed() {
                    let nothing: Box<dyn FnOnce(Result<(), String>) + Send> = Box::new(drop);
                    return (false, nothing);
                }
                let result = write(conn).await;
                let keep = result.is_ok() && !tx.is_closed();
                let answer: Box<dyn FnOnce(Result<(), String>) + Send> = Box::new(move |commit| {
                    let _ = tx.send(commit.map_err(StoreError::Database).and(result));
                });
                (keep, answer)
            })
        });
        let lead = {
            let mut state = lock_std(&self.inner.group.state);
            state.0.push(op);
            !std::mem::replace(&mut state.1, true)
        };
        if lead {
            let lead = Lead {
                store: self.clone(),
                done: false,
            };
            tokio::spawn(lead.run());
        }
        rx.await.unwrap_or_else(|_| {
            Err(StoreError::Database(
                "the write was dropped before it committed (the runtime is shutting down)".into(),
            ))
        })
    }
}

impl Lead {
    async fn run(mut self) {
        loop {
            let ops: Vec<Op> = {
                let mut state = lock_std(&self.store.inner.group.state);
                if state.0.is_empty() {
                    state.1 = false;
                    self.done = true;
                    return;
                }
                let n = state.0.len().min(GROUP_MAX);
                state.0.drain(..n).collect()
            };
            self.commit(ops).await;
        }
    }

    /// Runs `ops` in one transaction, each under its savepoint, and answers each.
    async fn commit(&self, ops: Vec<Op>) {
        let mut answers = Vec::with_capacity(ops.len());
        let mut tx = match self.store.write().await {
            Ok(tx) => tx,
            Err(e) => {
                let message = e.to_string();
                for op in ops {
                    drop(op); // its caller gets an error
                }
                tracing::warn!("a group of waits' writes could not start: {message}");
                return;
            }
        };
        let mut failed = None;
        for op in ops {
            if let Err(e) = sqlx::raw_sql("SAVEPOINT grouped").execute(&mut *tx).await {
                failed = Some(e.to_string());
                break;
            }
            let (keep, answer) = op(&mut tx).await;
            let end = if keep {
                "RELEASE grouped"
            } else {
                "ROLLBACK TO grouped; RELEASE grouped"
            };
            answers.push(answer);
            if let Err(e) = sqlx::raw_sql(end).execute(&mut *tx).await {
                failed = Some(e.to_string());
                break;
            }
        }
        let outcome = match failed {
            Some(message) => {
                let _ = tx.rollback().await;
                Err(message)
            }
            None => tx.commit().await.map_err(|e| db(e).to_string()),
        };
        for answer in answers {
            answer(outcome.clone());
        }
    }
}
