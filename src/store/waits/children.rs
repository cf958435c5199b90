//! Child runs' statements and transactions, written once for every backend
//! (`children_on!`, expanded by each backend's `dialect.rs`): a spawn recorded with the
//! parent's claim (not spawned twice), and a join that records the children's outcomes or
//! parks the parent until the last one ends (the `taskrunner_runs_child_done` trigger counts
//! down). A join reads (and, where the backend locks rows, locks `FOR SHARE`, highest id first)
//! the children's rows before the parent's, the order a child's end takes them: a child
//! either ended before the join looked, or ends after the parent is parked and counts down.

/// Inserts the child of run `$9`: `$1` name, `$2` queue, `$3` priority, `$4` input, `$5`
/// max attempts, `$6` call id, `$7` notify, due at `$8`, created at `$10`; returns its id.
pub(crate) const INSERT_CHILD: &str = "INSERT INTO taskrunner_runs (name, queue, priority, \
     input, max_attempts, call_id, notify, scheduled_at, created_at, parent_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $10, $9) RETURNING id";

/// The children's rows of the ids `$ids` reads from JSON array `$1`, highest id first (the
/// order every lock of several runs takes: see the PostgreSQL `dialect.rs`; `$lock`: what
/// locks them).
macro_rules! child_outcomes {
    ($ids:literal, $lock:literal) => {
        concat!(
            "SELECT id, status, output, error, error_kind FROM taskrunner_runs \
             WHERE id IN (",
            $ids,
            ") ORDER BY id DESC",
            $lock
        )
    };
}
pub(crate) use child_outcomes;

/// The runs under `$1`, at any depth, as a literal for `concat!`.
macro_rules! tree {
    () => {
        "WITH RECURSIVE tree(id) AS (\
         SELECT id FROM taskrunner_runs WHERE parent_id = $1 \
         UNION SELECT r.id FROM taskrunner_runs r JOIN tree t ON r.parent_id = t.id) \
         SELECT id FROM tree"
    };
}
pub(crate) use tree;

/// Whether `status` is a run's end.
pub(crate) fn is_terminal(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

/// The child runs of store `$store` (a [`Dialect`](crate::store::dialect::Dialect)).
macro_rules! children_on {
    ($store:ty) => {
        impl $store {
            pub(crate) async fn spawn_child(
                &self,
                id: $crate::store::RunId,
                token: i64,
                idx: i32,
                child: &$crate::store::types::NewRun,
            ) -> Result<Option<$crate::store::RunId>, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                use $crate::store::RunId;
                let db = |e| self.error(e);
                let mut tx = self.begin_write().await?;
                let Some(now) = self.holds(&mut tx, id, token).await? else {
                    tx.rollback().await.map_err(db)?;
                    return Ok(None);
                };
                if let Some(r) = self.record(&mut tx, id, "spawn", &child.name, idx).await? {
                    tx.commit().await.map_err(db)?;
                    let child = r.value.and_then(|v| v.parse().ok()).unwrap_or(0);
                    return Ok(Some(RunId::from_i64(child)));
                }
                let child_id: i64 =
                    sqlx::query_scalar($crate::store::waits::children::INSERT_CHILD)
                        .bind(&child.name)
                        .bind(&child.queue)
                        .bind(child.priority)
                        .bind(&child.input)
                        .bind(child.max_attempts)
                        .bind(&child.call_id)
                        .bind(child.notify)
                        .bind(now.saturating_add(child.delay_ms))
                        .bind(id.as_i64())
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(db)?;
                let value = child_id.to_string();
                self.write_record(
                    &mut tx,
                    id,
                    "spawn",
                    &child.name,
                    idx,
                    None,
                    true,
                    Some(&value),
                )
                .await?;
                if let Some(notify) = <Self as $crate::store::dialect::Dialect>::NOTIFY_QUEUE {
                    sqlx::query(notify)
                        .bind(&child.queue)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
                tx.commit().await.map_err(db)?;
                Ok(Some(RunId::from_i64(child_id)))
            }

            pub(crate) async fn join_children(
                &self,
                id: $crate::store::RunId,
                token: i64,
                children: &[$crate::store::RunId],
            ) -> Result<$crate::store::waits::JoinStep, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::dialect::Dialect as _;
                use $crate::store::waits::{
                    missing_child, outcome_from_json, outcome_json, JoinStep, NEVER_MS,
                };
                use $crate::store::RunId;
                let db = |e| self.error(e);
                let mut tx = self.begin_write().await?;
                let ids: Vec<i64> = children.iter().map(|c| c.as_i64()).collect();
                let ids = serde_json::to_string(&ids).unwrap_or_default();
                let rows = sqlx::query(<Self as $crate::store::dialect::Dialect>::CHILD_OUTCOMES)
                    .bind(&ids)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?;
                if self.holds(&mut tx, id, token).await?.is_none() {
                    tx.rollback().await.map_err(db)?;
                    return Ok(JoinStep::Fenced);
                }
                let mut outcomes = Vec::with_capacity(children.len());
                let mut left: Vec<RunId> = Vec::new();
                for &child in children {
                    let key = child.to_string();
                    if let Some(r) = self.record(&mut tx, id, "join", &key, 0).await? {
                        if r.done {
                            outcomes.push(outcome_from_json(r.value.as_deref().unwrap_or("")));
                            continue;
                        }
                    }
                    let mut outcome = None;
                    for row in &rows {
                        if row.try_get::<i64, _>("id").map_err(db)? == child.as_i64() {
                            outcome = Some($crate::store::row::outcome(row).map_err(db)?);
                            break;
                        }
                    }
                    let outcome = outcome.unwrap_or_else(|| missing_child(child));
                    let done = $crate::store::waits::children::is_terminal(&outcome.status);
                    let json = done.then(|| outcome_json(&outcome));
                    self.write_record(&mut tx, id, "join", &key, 0, None, done, json.as_deref())
                        .await?;
                    // A run joined twice ends once: it counts once.
                    if !done && !left.contains(&child) {
                        left.push(child);
                    }
                    outcomes.push(outcome);
                }
                let step = if left.is_empty() {
                    JoinStep::Ready(outcomes)
                } else {
                    let left = i32::try_from(left.len()).unwrap_or(i32::MAX);
                    self.park(&mut tx, id, token, NEVER_MS, "children", None, left)
                        .await?;
                    JoinStep::Parked
                };
                tx.commit().await.map_err(db)?;
                Ok(step)
            }
        }
    };
}
pub(crate) use children_on;
