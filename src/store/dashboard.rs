//! What a dashboard reads and does beyond a run's record: filtered pages of runs
//! (keyset, with the indexes of migration 7), counts that stop at a cap instead of scanning a
//! large table, each queue's durable counts and recent times, and a retry of an ended run.
//!
//! The statements are the same on both backends but for the substring match; each backend's
//! `dashboard.rs` expands the macros here on its own pool.

use std::time::Duration;

use super::{Backend, RunFilter, RunId, Store, StoreError};

/// The most runs a count reads: past it, a dashboard shows "10000+".
pub const COUNT_CAP: u64 = 10_000;

/// How many of a queue's latest completed runs its wait and run times are taken from.
const TIMES_SAMPLE: i64 = 200;

/// One queue's durable runs, from [`Store::queue_overview`]: each count stops at
/// [`COUNT_CAP`] (read from an index, never the whole table).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct QueueOverview {
    /// The queue's name.
    pub queue: String,
    /// Runs waiting to be claimed.
    pub pending: u64,
    /// Runs waiting for their start time.
    pub delayed: u64,
    /// Runs waiting for a signal, a wake time or their children
    /// ([`RunStatus::Waiting`](super::RunStatus::Waiting)).
    pub waiting: u64,
    /// Runs claimed by a process (running, or waiting out a retry's backoff).
    pub running: u64,
    /// Runs that failed in the last hour.
    pub failed_last_hour: u64,
    /// Runs that completed in the last hour.
    pub completed_last_hour: u64,
    /// Wait (submitted or due → first start), median and 99th percentile, of its latest 200
    /// completed runs; `None` before the first.
    pub wait: Option<(Duration, Duration)>,
    /// Run time (first start → end, retries included), median and 99th percentile, of the
    /// same runs.
    pub run: Option<(Duration, Duration)>,
}

/// Pushes `filter`'s conditions and order onto a `QueryBuilder` that ends in `WHERE TRUE`.
/// `$contains` is the backend's substring test, as `("instr(input, ", ") > 0")`.
macro_rules! push_filter {
    ($qb:ident, $filter:expr, $now:expr, $contains:expr) => {{
        let f = $filter;
        if let Some(status) = f.status {
            $qb.push(" AND status = ").push_bind(status.as_db());
            match status {
                $crate::store::RunStatus::Pending => {
                    $qb.push(" AND scheduled_at <= ").push_bind($now);
                }
                $crate::store::RunStatus::Delayed => {
                    $qb.push(" AND wait_kind IS NULL AND scheduled_at > ")
                        .push_bind($now);
                }
                $crate::store::RunStatus::Waiting => {
                    $qb.push(" AND wait_kind IS NOT NULL AND scheduled_at > ")
                        .push_bind($now);
                }
                _ => {}
            }
        }
        if let Some(name) = &f.name {
            $qb.push(" AND name = ").push_bind(name.clone());
        }
        if let Some(queue) = &f.queue {
            $qb.push(" AND queue = ").push_bind(queue.clone());
        }
        if let Some(parent) = f.parent {
            $qb.push(" AND parent_id = ").push_bind(parent.as_i64());
        }
        if let Some(before) = f.before {
            $qb.push(" AND id < ").push_bind(before.as_i64());
        }
        if let Some(after) = f.after {
            $qb.push(" AND id > ").push_bind(after.as_i64());
        }
        if let Some(t) = f.created_after {
            $qb.push(" AND created_at >= ")
                .push_bind($crate::store::dashboard::ms(t));
        }
        if let Some(t) = f.created_before {
            let t = $crate::store::dashboard::ms(t);
            $qb.push(" AND created_at < ").push_bind(t);
            // Newest first from the last run created before `t` (found by the created_at
            // index), not from the newest run: the walk down the ids starts there.
            $qb.push(" AND id <= coalesce((SELECT id FROM taskrunner_runs WHERE created_at < ")
                .push_bind(t)
                .push(" ORDER BY created_at DESC, id DESC LIMIT 1), 0)");
        }
        if let Some(text) = &f.input_contains {
            let (open, close) = $contains;
            $qb.push(" AND ")
                .push(open)
                .push_bind(text.clone())
                .push(close);
        }
    }};
}
pub(crate) use push_filter;

/// The statements of a dashboard on a pool of database `$db`, each at `now` on the store's
/// clock, and the reads of store `$store` (a [`Dialect`](super::dialect::Dialect)) on them.
macro_rules! dashboard_statements {
    ($store:ty, $db:ty, $contains:expr) => {
        impl $store {
            /// The store's clock: the one bound to statements (SQLite's file clock), else
            /// this process's.
            fn dashboard_now(&self) -> i64 {
                use $crate::store::dialect::Dialect as _;
                self.bound_now().unwrap_or_else(|| self.process_now())
            }

            pub(crate) async fn list_runs(
                &self,
                filter: &$crate::store::RunFilter,
            ) -> Result<Vec<$crate::store::RunInfo>, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                list_runs_on(self.reads(), filter, self.dashboard_now())
                    .await
                    .map_err(|e| self.error(e))
            }

            pub(crate) async fn count_runs(
                &self,
                filter: &$crate::store::RunFilter,
                cap: u64,
            ) -> Result<u64, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                count_runs_on(self.reads(), filter, cap, self.dashboard_now())
                    .await
                    .map_err(|e| self.error(e))
            }

            pub(crate) async fn queue_overview(
                &self,
                cap: u64,
            ) -> Result<Vec<$crate::store::QueueOverview>, $crate::store::StoreError> {
                use $crate::store::dialect::Dialect as _;
                let pool = self.reads();
                let cap = i64::try_from(cap).unwrap_or(i64::MAX);
                let mut out = Vec::new();
                for queue in queues_on(pool).await.map_err(|e| self.error(e))? {
                    out.push(
                        queue_overview_on(pool, &queue, cap, self.dashboard_now())
                            .await
                            .map_err(|e| self.error(e))?,
                    );
                }
                Ok(out)
            }
        }

        async fn list_runs_on(
            pool: &sqlx::Pool<$db>,
            filter: &$crate::store::RunFilter,
            now: i64,
        ) -> Result<Vec<$crate::store::RunInfo>, sqlx::Error> {
            let mut qb = sqlx::QueryBuilder::<$db>::new(concat!(
                "SELECT ",
                $crate::store::row::info_columns!(),
                " FROM taskrunner_runs WHERE TRUE"
            ));
            $crate::store::dashboard::push_filter!(qb, filter, now, $contains);
            qb.push(" ORDER BY id DESC LIMIT ")
                .push_bind(i64::from(filter.limit));
            let rows = qb.build().fetch_all(pool).await?;
            rows.iter()
                .map(|row| $crate::store::row::info(row, now))
                .collect()
        }

        async fn count_runs_on(
            pool: &sqlx::Pool<$db>,
            filter: &$crate::store::RunFilter,
            cap: u64,
            now: i64,
        ) -> Result<u64, sqlx::Error> {
            let mut qb = sqlx::QueryBuilder::<$db>::new(
                "SELECT count(*) FROM (SELECT 1 FROM taskrunner_runs WHERE TRUE",
            );
            $crate::store::dashboard::push_filter!(qb, filter, now, $contains);
            qb.push(" LIMIT ")
                .push_bind(i64::try_from(cap).unwrap_or(i64::MAX))
                .push(") AS capped");
            let n: i64 = qb.build_query_scalar().fetch_one(pool).await?;
            Ok(n.max(0) as u64)
        }

        async fn queues_on(pool: &sqlx::Pool<$db>) -> Result<Vec<String>, sqlx::Error> {
            // A skip scan of the (queue, id) index: one probe a queue, whatever the rows.
            sqlx::query_scalar(
                "WITH RECURSIVE q(name) AS ( \
                   SELECT min(queue) FROM taskrunner_runs \
                   UNION ALL \
                   SELECT (SELECT min(queue) FROM taskrunner_runs WHERE queue > q.name) \
                   FROM q WHERE q.name IS NOT NULL) \
                 SELECT name FROM q WHERE name IS NOT NULL",
            )
            .fetch_all(pool)
            .await
        }

        async fn queue_overview_on(
            pool: &sqlx::Pool<$db>,
            queue: &str,
            cap: i64,
            now: i64,
        ) -> Result<$crate::store::QueueOverview, sqlx::Error> {
            let hour_ago = now - 3_600_000;
            let count = |sql: &'static str, t: i64| {
                sqlx::query_scalar::<_, i64>(sql)
                    .bind(queue.to_owned())
                    .bind(t)
                    .bind(cap)
                    .fetch_one(pool)
            };
            let pending = count(
                "SELECT count(*) FROM (SELECT 1 FROM taskrunner_runs WHERE status = 'pending' \
                 AND queue = $1 AND scheduled_at <= $2 LIMIT $3) AS c",
                now,
            )
            .await?;
            let delayed = count(
                "SELECT count(*) FROM (SELECT 1 FROM taskrunner_runs WHERE status = 'pending' \
                 AND queue = $1 AND scheduled_at > $2 AND wait_kind IS NULL LIMIT $3) AS c",
                now,
            )
            .await?;
            let waiting = count(
                "SELECT count(*) FROM (SELECT 1 FROM taskrunner_runs WHERE status = 'pending' \
                 AND queue = $1 AND scheduled_at > $2 AND wait_kind IS NOT NULL LIMIT $3) AS c",
                now,
            )
            .await?;
            let running = count(
                "SELECT count(*) FROM (SELECT 1 FROM taskrunner_runs WHERE status = 'running' \
                 AND queue = $1 AND $2 = $2 LIMIT $3) AS c",
                now,
            )
            .await?;
            let failed = count(
                "SELECT count(*) FROM (SELECT 1 FROM taskrunner_runs WHERE queue = $1 \
                 AND status = 'failed' AND finished_at >= $2 LIMIT $3) AS c",
                hour_ago,
            )
            .await?;
            let completed = count(
                "SELECT count(*) FROM (SELECT 1 FROM taskrunner_runs WHERE queue = $1 \
                 AND status = 'completed' AND finished_at >= $2 LIMIT $3) AS c",
                hour_ago,
            )
            .await?;
            let times: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT coalesce(started_at - scheduled_at, 0), \
                   coalesce(finished_at - started_at, 0) \
                 FROM taskrunner_runs WHERE queue = $1 AND status = 'completed' \
                 AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT $2",
            )
            .bind(queue.to_owned())
            .bind($crate::store::dashboard::times_sample())
            .fetch_all(pool)
            .await?;
            let (wait, run) = $crate::store::dashboard::percentiles(&times);
            Ok($crate::store::QueueOverview {
                queue: queue.to_owned(),
                pending: pending.max(0) as u64,
                delayed: delayed.max(0) as u64,
                waiting: waiting.max(0) as u64,
                running: running.max(0) as u64,
                failed_last_hour: failed.max(0) as u64,
                completed_last_hour: completed.max(0) as u64,
                wait,
                run,
            })
        }
    };
}
pub(crate) use dashboard_statements;

pub(crate) fn ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) const fn times_sample() -> i64 {
    TIMES_SAMPLE
}

type Pair = (Duration, Duration);

/// The median and 99th percentile of the waits and of the run times in `times` (ms).
pub(crate) fn percentiles(times: &[(i64, i64)]) -> (Option<Pair>, Option<Pair>) {
    let pick = |mut v: Vec<i64>| -> Option<Pair> {
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = |q: f64| {
            let i = ((v.len() - 1) as f64 * q).round() as usize;
            Duration::from_millis(v[i].max(0) as u64)
        };
        Some((at(0.5), at(0.99)))
    };
    (
        pick(times.iter().map(|t| t.0).collect()),
        pick(times.iter().map(|t| t.1).collect()),
    )
}

// ===== impl Store =====

impl Store {
    /// How many runs match `filter` (its `limit` ignored), counting at most `cap`: a count
    /// of `cap` means "`cap` or more". Reads at most `cap` index entries, so it stays fast on
    /// a store of millions of runs; see [`COUNT_CAP`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] if the store cannot be read.
    pub async fn count_runs(&self, filter: &RunFilter, cap: u64) -> Result<u64, StoreError> {
        dispatch!(self, s => s.count_runs(filter, cap).await)
    }

    /// Every queue that has durable runs, with its counts (each capped at [`COUNT_CAP`]) and
    /// its latest wait and run times: what a dashboard's overview shows.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] if the store cannot be read.
    pub async fn queue_overview(&self) -> Result<Vec<QueueOverview>, StoreError> {
        dispatch!(self, s => s.queue_overview(COUNT_CAP).await)
    }

    /// Puts a failed or cancelled run back to pending (same id; its attempts go on, with its
    /// retries again): the queue it runs in, or `None` if it has not ended that way.
    pub(crate) async fn retry_run(&self, id: RunId) -> Result<Option<String>, StoreError> {
        dispatch!(self, s => s.retry_run(id).await)
    }
}

impl Store {
    /// Submits a run of durable schedule `name` now: its id and queue, `None` if there is no
    /// such schedule.
    pub(crate) async fn trigger_schedule(
        &self,
        name: &str,
    ) -> Result<Option<(RunId, String)>, StoreError> {
        dispatch!(self, s => s.trigger_schedule(name).await)
    }
}
