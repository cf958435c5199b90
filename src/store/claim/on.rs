//! `claim_on!`: the claim, heartbeat, attempts, ends and release of a store, written once.

/// A claimed run's life on store `$store` (a [`Dialect`](crate::store::dialect::Dialect)).
macro_rules! claim_on {
    ($store:ty) => {
        impl $store {
            /// Claims up to `max` ready runs of `names` in `queue` for `owner`, in claim
            /// order. Without limits to count, one statement (SQLite: in the writer's
            /// transaction; PostgreSQL: autocommit); with them, one transaction that counts
            /// under the backend's lock ([`Self::claim_limit`]) and claims.
            pub(crate) async fn claim(
                &self,
                queue: &str,
                names: &[String],
                max: usize,
                owner: &str,
                lease_ms: i64,
                global: $crate::store::GlobalLimits,
            ) -> Result<Vec<$crate::store::Claimed>, $crate::store::StoreError> {
                use $crate::store::dialect::{bind_now, Dialect};
                let db = |e| self.error(e);
                let names = <Self as Dialect>::names(names);
                // The clock is read once the connection (SQLite: the one writer) is held,
                // so a claim that waited for it does not backdate its starts, leases and stamps.
                let claim = |limit: i64, now: Option<i64>| {
                    bind_now!(
                        now,
                        sqlx::query(<Self as Dialect>::CLAIM)
                            .bind(owner)
                            .bind(lease_ms)
                            .bind(queue)
                            .bind(&names)
                            .bind(limit)
                    )
                };
                let read = |rows: Vec<_>| {
                    rows.iter()
                        .map($crate::store::claim::claimed)
                        .collect::<Result<Vec<$crate::store::Claimed>, _>>()
                        .map_err(db)
                };
                let mut claimed = if !global.any() {
                    let mut one = self.one().await?;
                    let now = self.bound_now();
                    let rows = claim(max as i64, now)
                        .fetch_all(&mut *one)
                        .await
                        .map_err(db)?;
                    self.done(one).await?;
                    read(rows)?
                } else {
                    let mut tx = self.begin_write().await?;
                    let now = self.bound_now();
                    let limit = self.claim_limit(&mut tx, queue, max, global, now).await?;
                    if limit <= 0 {
                        tx.rollback().await.map_err(db)?;
                        return Ok(Vec::new());
                    }
                    let rows = match global.budget {
                        // The runs whose estimates fit the global budget (store/limits/budget.rs).
                        Some(budget) => {
                            let to = (owner, lease_ms, now);
                            $crate::store::limits::budget::claim_budgeted(
                                self, &mut *tx, queue, &names, limit, to, budget,
                            )
                            .await?
                        }
                        None => read(claim(limit, now).fetch_all(&mut *tx).await.map_err(db)?)?,
                    };
                    if global.rate.is_some() && !rows.is_empty() {
                        // Stamped after the claim: never earlier than the runs' start times.
                        bind_now!(
                            now,
                            sqlx::query(<Self as Dialect>::STAMP_CLAIMS)
                                .bind(queue)
                                .bind(rows.len() as i32)
                        )
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    }
                    tx.commit().await.map_err(db)?;
                    rows
                };
                claimed.sort_by_key(|c| (std::cmp::Reverse(c.priority), c.scheduled_at, c.id));
                Ok(claimed)
            }

            /// How many of `queue`'s runs a claim of at most `max` may take now, under the
            /// queue's limits across every process (`global_concurrency`: runs running now;
            /// `global_rate_limit`: runs claimed in the window), counted in `tx` under the
            /// backend's lock for the queue's claims. The one place a claim's limits are
            /// computed: a new limit is counted here (and named in
            /// [`GlobalLimits::any`](crate::store::GlobalLimits)).
            async fn claim_limit(
                &self,
                tx: &mut sqlx::Transaction<'static, <Self as $crate::store::dialect::Dialect>::Db>,
                queue: &str,
                max: usize,
                global: $crate::store::GlobalLimits,
                now: Option<i64>,
            ) -> Result<i64, $crate::store::StoreError> {
                use $crate::store::dialect::{bind_now, Dialect};
                let db = |e| self.error(e);
                if let Some(lock) = <Self as Dialect>::LOCK_QUEUE_CLAIMS {
                    sqlx::query(lock)
                        .bind(queue)
                        .execute(&mut **tx)
                        .await
                        .map_err(db)?;
                }
                let mut limit = max as i64;
                if let Some(global) = global.concurrency {
                    let running: i64 = bind_now!(
                        now,
                        sqlx::query_scalar(<Self as Dialect>::COUNT_RUNNING).bind(queue)
                    )
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(db)?;
                    limit = limit.min(global as i64 - running);
                }
                if let Some((starts, per)) = global.rate {
                    // Stamps older than the window go; the rest count.
                    bind_now!(
                        now,
                        sqlx::query(<Self as Dialect>::PRUNE_CLAIM_TIMES)
                            .bind(queue)
                            .bind(per)
                    )
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                    let used: i64 = sqlx::query_scalar($crate::store::claim::CLAIMS_IN_WINDOW)
                        .bind(queue)
                        .fetch_one(&mut **tx)
                        .await
                        .map_err(db)?;
                    limit = limit.min(starts - used);
                }
                Ok(limit)
            }

            /// Renews the leases of exactly the claims `held` (run, token) that still hold;
            /// with `release`, hands back (to pending, the attempt not counted) the runs
            /// leased to `owner` that it does not hold: claimed by a claim whose answer was
            /// lost, or whose end could not be stored.
            pub(crate) async fn heartbeat(
                &self,
                owner: &str,
                held: &[($crate::store::RunId, i64)],
                lease_ms: i64,
                release: bool,
            ) -> Result<(Vec<$crate::store::types::Held>, u64), $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::dialect::{bind_now, Dialect};
                let db = |e| self.error(e);
                let held = $crate::store::claim::pairs_json(held);
                // The two statements touch different runs: on PostgreSQL each commits
                // alone (no transaction's round trips on the heartbeat's path).
                let mut one = self.one().await?;
                let rows = bind_now!(
                    self.bound_now(),
                    sqlx::query(<Self as Dialect>::RENEW_LEASES)
                        .bind(&held)
                        .bind(lease_ms)
                )
                .fetch_all(&mut *one)
                .await
                .map_err(db)?;
                let released = if release {
                    sqlx::query(<Self as Dialect>::RELEASE_UNHELD)
                        .bind(&held)
                        .bind(owner)
                        .execute(&mut *one)
                        .await
                        .map_err(db)?
                        .rows_affected()
                } else {
                    0
                };
                self.done(one).await?;
                let held = rows
                    .iter()
                    .map(|row| {
                        Ok($crate::store::types::Held {
                            id: $crate::store::RunId::from_i64(row.try_get("id")?),
                            token: row.try_get("claim_token")?,
                            cancel_requested: row.try_get("cancel_requested")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(db)?;
                Ok((held, released))
            }

            /// Stores the ends of `batch`, each only while its claim holds, in one statement
            /// (SQLite: in the writer's transaction; PostgreSQL: autocommit, so no row lock
            /// outlives it, even while this process's runtime is blocked by handlers, which
            /// would hold back the heartbeat's renewal): whether each was stored (a retry that finds the run already
            /// ended exactly so finds its own write, committed before its answer was lost).
            pub(crate) async fn finish(
                &self,
                batch: &[$crate::store::Finish],
            ) -> Result<Vec<bool>, $crate::store::StoreError> {
                use $crate::store::dialect::{bind_now, Dialect};
                let db = |e| self.error(e);
                let mut one = self.one().await?;
                let sql = match batch {
                    [_] => <Self as Dialect>::FINISH_ONE,
                    _ => <Self as Dialect>::FINISH_RUNS,
                };
                let mut applied: std::collections::HashSet<i64> = bind_now!(
                    self.bound_now(),
                    sqlx::query_scalar(sql).bind($crate::store::claim::ends_json(batch.iter()))
                )
                .fetch_all(&mut *one)
                .await
                .map_err(db)?
                .into_iter()
                .collect();
                if applied.len() < batch.len() {
                    let rest = batch.iter().filter(|f| !applied.contains(&f.id.as_i64()));
                    let found: Vec<i64> = sqlx::query_scalar(<Self as Dialect>::ENDED_AS_SAID)
                        .bind($crate::store::claim::ends_json(rest))
                        .fetch_all(&mut *one)
                        .await
                        .map_err(db)?;
                    applied.extend(found);
                }
                self.done(one).await?;
                Ok(batch
                    .iter()
                    .map(|f| applied.contains(&f.id.as_i64()))
                    .collect())
            }

            /// Counts attempt `attempts` on run `id` while claim `token` holds it, and puts
            /// `error` (the attempt before's) on the `retry` event this appends.
            pub(crate) async fn record_attempt(
                &self,
                id: $crate::store::RunId,
                token: i64,
                attempts: i32,
                error: Option<&str>,
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                let db = |e| self.error(e);
                let mut tx = self.begin_write().await?;
                let done = sqlx::query($crate::store::claim::RECORD_ATTEMPT)
                    .bind(attempts)
                    .bind(id.as_i64())
                    .bind(token)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                if let (Some(error), 1) = (error, done.rows_affected()) {
                    sqlx::query($crate::store::claim::RETRY_ERROR)
                        .bind(error)
                        .bind(id.as_i64())
                        .bind(attempts.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
                tx.commit().await.map_err(db)?;
                Ok(done.rows_affected() == 1)
            }

            /// Hands back the claims `runs` (to pending, the attempt not counted), and tells
            /// their queues where the backend can (PostgreSQL: each statement autocommits).
            pub(crate) async fn release(
                &self,
                runs: &[($crate::store::RunId, i64)],
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::dialect::Dialect;
                let db = |e| self.error(e);
                let mut one = self.one().await?;
                let mut queues: Vec<String> = sqlx::query_scalar(<Self as Dialect>::RELEASE_CLAIMS)
                    .bind($crate::store::claim::pairs_json(runs))
                    .fetch_all(&mut *one)
                    .await
                    .map_err(db)?;
                queues.sort_unstable();
                queues.dedup();
                if let Some(notify) = <Self as Dialect>::NOTIFY_QUEUE {
                    for queue in &queues {
                        sqlx::query(notify)
                            .bind(queue)
                            .execute(&mut *one)
                            .await
                            .map_err(db)?;
                    }
                }
                self.done(one).await
            }
        }
    };
}
pub(crate) use claim_on;
