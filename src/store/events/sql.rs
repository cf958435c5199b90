//! The statements and methods of run streams, the same on every backend but for the
//! [`Dialect`](crate::store::dialect::Dialect)'s run-stream items (the fenced append's
//! shape, live events to other processes, the watcher): `events_on!` expands them on a
//! store.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::EventRow;

/// Up to `$3` events of run `$1`'s log from offset `$2`, in order.
pub(crate) const READ_EVENTS: &str = "SELECT seq, at, kind, topic, value \
     FROM taskrunner_run_events WHERE run_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3";

/// Up to `$3` events of run `$1`'s log from offset `$2` that are not emits, in order.
pub(crate) const READ_STATUS_EVENTS: &str = "SELECT seq, at, kind, topic, value \
     FROM taskrunner_run_events WHERE run_id = $1 AND seq >= $2 AND kind <> 'emit' \
     ORDER BY seq LIMIT $3";

/// Run `$1`'s stored status.
pub(crate) const RUN_STATUS: &str = "SELECT status FROM taskrunner_runs WHERE id = $1";

/// One event of the log, read by [`READ_EVENTS`] or [`READ_STATUS_EVENTS`].
pub(crate) fn event_row<'r, R>(row: &'r R) -> Result<EventRow, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(EventRow {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        kind: row.try_get("kind")?,
        topic: row.try_get("topic")?,
        value: row.try_get("value")?,
    })
}

/// The run streams of store `$store` (a [`Dialect`](crate::store::dialect::Dialect)):
/// the fenced append of emits and what it means, live events to this process's readers,
/// paged reads, and subscriptions.
macro_rules! events_on {
    ($store:ty) => {
        impl $store {
            /// Appends the emits not stored yet while `token` holds `run`, then wakes this
            /// process's readers if any was written.
            pub(crate) async fn append_emits(
                &self,
                run: $crate::store::types::RunId,
                token: i64,
                emits: &[$crate::store::events::EmitRow],
            ) -> Result<$crate::store::events::Appended, $crate::store::StoreError> {
                use $crate::store::dialect::Streams as _;
                Ok(match self.append_fenced(run, token, emits).await? {
                    None => $crate::store::events::Appended::LeaseLost,
                    Some((next_seq, added)) => {
                        if added {
                            self.hub().wake(run);
                        }
                        $crate::store::events::Appended::Done { next_seq }
                    }
                })
            }

            /// This process's readers at once, then other processes' where the backend
            /// reaches them.
            pub(crate) async fn publish_live(
                &self,
                rows: Vec<$crate::store::events::LiveRow>,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::dialect::Streams as _;
                let rows: Vec<std::sync::Arc<_>> =
                    rows.into_iter().map(std::sync::Arc::new).collect();
                for row in &rows {
                    self.hub().live(std::sync::Arc::clone(row));
                }
                self.send_live(&rows).await
            }

            pub(crate) async fn read_events(
                &self,
                run: $crate::store::types::RunId,
                from: i64,
                limit: i64,
                status_only: bool,
            ) -> Result<Vec<$crate::store::events::EventRow>, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                use $crate::store::events::sql::{READ_EVENTS, READ_STATUS_EVENTS};
                let sql = if status_only {
                    READ_STATUS_EVENTS
                } else {
                    READ_EVENTS
                };
                let rows = sqlx::query(sql)
                    .bind(run.as_i64())
                    .bind(from)
                    .bind(limit)
                    .fetch_all(self.reads())
                    .await
                    .map_err(|e| self.error(e))?;
                rows.iter()
                    .map($crate::store::events::sql::event_row)
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(|e| self.error(e))
            }

            pub(crate) async fn run_status(
                &self,
                run: $crate::store::types::RunId,
            ) -> Result<Option<String>, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                sqlx::query_scalar($crate::store::events::sql::RUN_STATUS)
                    .bind(run.as_i64())
                    .fetch_optional(self.reads())
                    .await
                    .map_err(|e| self.error(e))
            }

            pub(crate) fn subscribe_events(
                &self,
                run: $crate::store::types::RunId,
            ) -> $crate::store::events::Subscription {
                use $crate::store::dialect::Streams as _;
                let (sub, start) = self.hub().subscribe(run);
                if start {
                    self.start_watcher();
                }
                sub
            }
        }
    };
}
pub(crate) use events_on;
