//! One store layer for every database: what differs between SQLite and PostgreSQL, named
//! once, as the [`Dialect`] each backend implements in its `dialect.rs`.
//!
//! A store capability (steps, schedules, notifications, the migrations) is written once,
//! in its own `store/<capability>.rs`: its types, its `Store` method, and a macro
//! (`steps_on!`, `schedules_on!`, ...) whose body is the capability's transactions, row
//! handling and semantics. A backend's `dialect.rs` implements [`Dialect`] (SQL text that
//! differs, composed from the shared templates in [`parts`]; how it reads, writes and
//! tells the time) and expands every capability on its store type ([`capabilities_on!`]);
//! its `events.rs` implements [`Streams`]. The macros expand to plain methods on the
//! concrete store, so each backend's code is type-checked against its own sqlx driver,
//! with none of the bounds a function generic over `sqlx::Database` needs; the trait is what
//! a new backend must provide, checked by the compiler. Where a capability binds and reads
//! only a few plain types, it is a function generic over [`Dialect`] instead, its bounds
//! listed once on it (the budgeted claim, `store/limits/budget/claim.rs`).
//!
//! Rules of the statements:
//! - SQL that is the same on every backend lives beside its capability as a `const`; only
//!   text that really differs is a [`Dialect`] constant.
//! - The store's clock: where a statement needs "now", the backend's text reads it from the
//!   database (`taskrunner_now_ms()` on PostgreSQL) or from one extra parameter, always the
//!   last (SQLite, whose clock is the file's, read by the process): the shared code binds
//!   [`Dialect::bound_now`] last when it is `Some`.
//! - A write of one statement goes through [`Dialect::one`]/[`Dialect::done`] (SQLite: a
//!   `BEGIN IMMEDIATE` transaction; PostgreSQL: one pooled connection, autocommit), a write
//!   of several through [`Dialect::begin_write`] (one transaction on both), the writes of
//!   waits and signals through [`Dialect::wait_write`].

use std::sync::Arc;

use futures::future::BoxFuture;
use sqlx::{Database, Pool, Transaction};

use super::events::{EmitRow, Hub, LiveRow};
use super::types::RunId;
use super::StoreError;

/// The answer of a [`Dialect::wait_write`]'s write.
pub(crate) type Waited<'c, T> = BoxFuture<'c, Result<T, StoreError>>;

/// What a backend gives the shared store layer: how it reads, writes and tells the time,
/// and the SQL text that differs from the other backends' (its run streams: [`Streams`]).
pub(crate) trait Dialect: Streams + Sync {
    /// The sqlx driver.
    type Db: Database;
    /// A connection for a write of one statement, handed back with [`Dialect::done`].
    type One: std::ops::DerefMut<Target = <Self::Db as Database>::Connection> + Send;

    /// The pool reads go to.
    fn reads(&self) -> &Pool<Self::Db>;
    /// A transaction that writes (locks taken as the backend needs them).
    async fn begin_write(&self) -> Result<Transaction<'static, Self::Db>, StoreError>;
    /// A connection for one statement that writes.
    async fn one(&self) -> Result<Self::One, StoreError>;
    /// Ends the write of [`Dialect::one`] (commits it where it was a transaction).
    async fn done(&self, one: Self::One) -> Result<(), StoreError>;
    /// `error` as this store reports it (secrets scrubbed).
    fn error(&self, error: sqlx::Error) -> StoreError;
    /// The store's clock as a value to bind last, or `None` where the statements read the
    /// database's own clock.
    fn bound_now(&self) -> Option<i64>;
    /// Runs `write` (the statements of a wait or of a signal: `waits_on!`) as one write,
    /// committed if it returns `Ok`, given the store (SQLite: a clone, as the write runs in
    /// the group commit's task) and the write's connection.
    async fn wait_write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        Self: Clone + Send + 'static,
        T: Send + 'static,
        F: for<'c> FnOnce(&'c Self, &'c mut <Self::Db as Database>::Connection) -> Waited<'c, T>
            + Send
            + 'static;

    // ----- steps (`store/steps.rs`)

    /// Writes a step's end: `$1` run, `$2` token, `$3` name, `$4` index, `$5` status,
    /// `$6` output, `$7` error, `$8` elapsed ms (then now): only if the run is `running`
    /// under that token, never over a completed step; affects one row if written.
    const SAVE_STEP: &'static str;

    // ----- waits (signals, children) (`store/waits.rs`, `store/waits/sql.rs`)

    /// The store's time if claim `$2` holds run `$1` (running, no cancel pending), its row
    /// locked until commit where the backend locks rows (then now).
    const HOLDS_RUN: &'static str;
    /// Writes wait `$1`..`$7` (see `write_wait!`), created at now.
    const WRITE_WAIT: &'static str;
    /// Parks run `$5` under claim `$6` (see `park_run!`).
    const PARK_RUN: &'static str;
    /// Reads run `$1` for a signal, with the store's time as `now` (then now).
    const SIGNALED_RUN: &'static str;
    /// The children's rows (`id, status, output, error, error_kind`) of the ids in JSON
    /// array `$1`, in id order, locked `FOR SHARE` where the backend locks rows.
    const CHILD_OUTCOMES: &'static str;

    // ----- durable notifications (`store/notifications.rs`)

    /// Deletes and returns (`id, run_id, call_id, name, queue, status, text, finished_at`)
    /// up to `$1` notifications, oldest first, each to one caller.
    const TAKE_NOTIFICATIONS: &'static str;
    /// Deletes notifications that ended more than `$1` ms ago (then now).
    const PRUNE_NOTIFICATIONS: &'static str;

    // ----- durable schedules (`store/schedules.rs`)

    /// Creates schedule `$1`.. (see `store/schedules.rs`), created at now; one row affected
    /// if it created or replaced a stopped one.
    const CREATE_SCHEDULE: &'static str;
    /// The schedules (`schedule_columns!`) active, due at `$1`, of the names in JSON array `$2`.
    const DUE_SCHEDULES: &'static str;
    /// The earliest due time of the active schedules of the names in JSON array `$1`.
    const NEXT_SCHEDULE_DUE: &'static str;
    /// Reads schedule `$1` for a fire, locked against a concurrent fire until commit.
    const LOCK_SCHEDULE: &'static str;
    /// Locks run `$1`'s row until the transaction ends (where the backend locks rows), so a
    /// cancel's two statements see one status: a run that parks between them is not missed.
    /// Where it locks rows it takes the run's unfinished tree too, in the order every lock of
    /// several runs takes (PostgreSQL: highest id first, so the run last; see its
    /// `dialect.rs`), so a cancel does not deadlock with ends, joins or the heartbeat.
    const LOCK_RUN: &'static str;
    /// Cancels run `$1` if pending, finished at now.
    const CANCEL_PENDING: &'static str;
    /// Asks running run `$1` to stop (and tells its process where the backend can).
    const CANCEL_RUNNING: &'static str;
    /// Inserts a schedule's run: `$1` name, `$2` queue, `$3` priority, `$4` input,
    /// `$5` max attempts, `$6` schedule, `$7` call id, due and created now; returns its id.
    const INSERT_SCHEDULED_RUN: &'static str;

    // ----- notifications of new runs

    /// Tells the processes that queue `$1` has a new run, in the transaction that inserted
    /// it (`None`: the backend's processes poll).
    const NOTIFY_QUEUE: Option<&'static str>;

    // ----- the claim, leases and ends (`store/claim.rs`)

    /// The list of names a claim binds (`$4` of [`Dialect::CLAIM`]).
    type Names;
    /// `names` as the claim binds them.
    fn names(names: &[String]) -> Self::Names;
    /// Claims for owner `$1`, leased for `$2` ms, up to `$5` runs of queue `$3` and of the
    /// names `$4` ready at now, in claim order, each row locked against other claimers
    /// (then now); returns `claimed_columns!`. Starts with `WITH ready AS` on PostgreSQL
    /// (a fault test cuts the connection that sends it).
    const CLAIM: &'static str;
    /// Takes the lock of queue `$1`'s claims that count limits until commit, where the
    /// write transaction does not hold one already.
    const LOCK_QUEUE_CLAIMS: Option<&'static str>;
    /// `count_running!`: queue `$1`'s runs running now (then now).
    const COUNT_RUNNING: &'static str;
    /// `prune_claim_times!`: queue `$1`'s stamps out of the window of `$2` ms (then now).
    const PRUNE_CLAIM_TIMES: &'static str;
    /// `stamp_claims!`: a claim of `$2` runs of queue `$1` now (then now).
    const STAMP_CLAIMS: &'static str;
    /// `renew_leases!`: the claims of JSON pairs `$1`, `$2` ms from now (then now).
    const RENEW_LEASES: &'static str;
    /// `release_unheld!`: runs leased to `$2` not among JSON pairs `$1`.
    const RELEASE_UNHELD: &'static str;
    /// `release_claims!`: the claims of JSON pairs `$1`; returns their queues.
    const RELEASE_CLAIMS: &'static str;
    /// `finish_runs!`: the ends of JSON `$1` whose claims hold, now (then now).
    const FINISH_RUNS: &'static str;
    /// [`Dialect::FINISH_RUNS`] for a list of one end, which needs no lock taken ahead: it
    /// takes one run's row, then its parent's (the trigger), already in the lock order.
    const FINISH_ONE: &'static str;
    /// `ended_as_said!`: the runs of JSON ends `$1` already ended so.
    const ENDED_AS_SAID: &'static str;

    // ----- a queue's global budget (`store/limits/budget/claim.rs`)

    /// A budgeted claim's candidates (`id, cost, resumed`) for queue `$1` at `$2`, of the
    /// names `$3` ([`Dialect::names`]), up to `$4`, in claim order, each row locked against
    /// other claims until commit where the backend locks rows.
    const PICK_BUDGETED: &'static str;
    /// `prune_charges!`: queue `$1`'s charges out of the window of `$2` ms (then now).
    const PRUNE_CHARGES: &'static str;
    /// `charges_in_window!`: now, and the units queue `$1`'s window of `$2` ms holds (then
    /// now).
    const CHARGES_IN_WINDOW: &'static str;
    /// `refuse_runs!`: fails with `$1`, at `$2`, the pending runs of JSON `$3`.
    const REFUSE_RUNS: &'static str;
    /// `claim_picked!`: claims the runs of JSON `$1` for `$2`, lease end `$3`, at `$4`.
    const CLAIM_PICKED: &'static str;
    /// `insert_charges!`: queue `$1`'s charges of JSON `$3`, at `$2`.
    const INSERT_CHARGES: &'static str;

    // ----- runs (manage, submit) (`store/dialect/runs.rs`)

    /// Puts back the runs whose lease expired at now and whose owner is not `$1` (a
    /// recovery each), or cancels those whose cancel was asked (then now).
    const RESCUE: &'static str;
    /// Deletes up to `$2` runs that finished more than `$1` ms ago (then now).
    const PRUNE_BY_AGE: &'static str;
    /// Puts failed or cancelled run `$1` back to pending, due now (then now); returns its
    /// queue.
    const RETRY_RUN: &'static str;
    /// Inserts a run of durable schedule `$1`, now (then now); returns its id and queue.
    const TRIGGER_SCHEDULE: &'static str;
}

/// What a backend does for run streams (`store/events.rs`, `store/events/sql.rs`),
/// implemented beside the rest of its streams' code (its `events.rs`).
pub(crate) trait Streams {
    /// This store's readers of run streams.
    fn hub(&self) -> &Arc<Hub>;
    /// Appends to `run`'s log, as one write fenced by the claim (`token` holds `run` and it
    /// is `running`), the `emits` whose index is not below the run's count of stored emits,
    /// at the log's next offsets. The shape is the backend's: its statements must hold the
    /// run against every other writer of its log while they take offsets.
    async fn append_fenced(&self, run: RunId, token: i64, emits: &[EmitRow]) -> Fenced;
    /// Hands live events, already handed to this process's readers, to other processes'
    /// where the backend can.
    async fn send_live(&self, rows: &[Arc<LiveRow>]) -> Result<(), StoreError>;
    /// Starts the watcher that wakes this process's readers when another writer appended
    /// (it stops itself once nobody reads: see [`Hub::idle`]).
    fn start_watcher(&self);
}

/// What [`Streams::append_fenced`] found: the log's next offset and whether this process's
/// readers are to be woken, or `None` if the claim no longer holds the run.
pub(crate) type Fenced = Result<Option<(i64, bool)>, StoreError>;

pub(crate) mod runs;

/// The shared statements' macros a backend's `dialect.rs` composes its constants from
/// (`use crate::store::dialect::parts::*`). Each backend uses what it needs (PostgreSQL
/// names its claim's columns itself): a build with one backend leaves some unused.
#[allow(unused_imports)]
pub(crate) mod parts {
    pub(crate) use super::runs::{prune_by_age, rescue, retry_run, trigger_schedule};
    pub(crate) use crate::store::claim::{
        claimed_columns, count_running, ended_as_said, finish_runs, prune_claim_times,
        release_claims, release_unheld, renew_leases, stamp_claims,
    };
    pub(crate) use crate::store::limits::budget::{
        charges_in_window, claim_picked, insert_charges, prune_charges, refuse_runs,
    };
    pub(crate) use crate::store::limits::not_paused;
    pub(crate) use crate::store::notifications::{prune_notifications, take_notifications};
    pub(crate) use crate::store::schedules::sql::{
        cancel_pending, create_schedule, due_schedules, insert_scheduled_run, lock_schedule,
        next_schedule_due,
    };
    pub(crate) use crate::store::steps::{insert_step, next_step_seq, upsert_step};
    pub(crate) use crate::store::waits::children::child_outcomes;
    pub(crate) use crate::store::waits::sql::{holds_run, park_run, signaled_run, write_wait};
}

/// Every capability written once (`steps_on!`, `claim_on!`, ...), expanded on store
/// `$store` (a [`Dialect`]): the one line a backend's `dialect.rs` ends with.
macro_rules! capabilities_on {
    ($store:ty) => {
        $crate::store::steps::steps_on!($store);
        $crate::store::waits::sql::waits_on!($store);
        $crate::store::waits::children::children_on!($store);
        $crate::store::notifications::notifications_on!($store);
        $crate::store::schedules::sql::schedules_on!($store);
        $crate::store::events::sql::events_on!($store);
        $crate::store::dialect::runs::manage_on!($store);
        $crate::store::claim::claim_on!($store);
    };
}
pub(crate) use capabilities_on;

/// Binds `$now` (a [`Dialect::bound_now`]) last, where the backend's statements take the
/// store's clock as a parameter.
macro_rules! bind_now {
    ($now:expr, $query:expr) => {{
        let query = $query;
        match $now {
            Some(now) => query.bind(now),
            None => query,
        }
    }};
}
pub(crate) use bind_now;

#[cfg(all(test, feature = "sqlite", feature = "postgres"))]
mod tests {
    use super::Dialect;
    use crate::store::{PgStore, SqliteStore};

    /// The highest `$n` in `sql`.
    fn params(sql: &str) -> u32 {
        sql.split('$')
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn the_dialects_take_the_same_parameters_and_sqlite_the_clock_last() {
        macro_rules! check {
            ($($name:ident: $clocked:expr),* $(,)?) => {$(
                let (lite, pg) = (
                    params(<SqliteStore as Dialect>::$name),
                    params(<PgStore as Dialect>::$name),
                );
                assert_eq!(lite, pg + u32::from($clocked), stringify!($name));
            )*};
        }
        check!(
            SAVE_STEP: true,
            TAKE_NOTIFICATIONS: false,
            PRUNE_NOTIFICATIONS: true,
            CREATE_SCHEDULE: true,
            DUE_SCHEDULES: false,
            NEXT_SCHEDULE_DUE: false,
            LOCK_SCHEDULE: false,
            LOCK_RUN: false,
            CANCEL_PENDING: true,
            CANCEL_RUNNING: false,
            INSERT_SCHEDULED_RUN: true,
            HOLDS_RUN: true,
            WRITE_WAIT: true,
            PARK_RUN: false,
            SIGNALED_RUN: true,
            CHILD_OUTCOMES: false,
            RESCUE: true,
            PRUNE_BY_AGE: true,
            RETRY_RUN: true,
            TRIGGER_SCHEDULE: true,
            CLAIM: true,
            COUNT_RUNNING: true,
            PRUNE_CLAIM_TIMES: true,
            STAMP_CLAIMS: true,
            RENEW_LEASES: true,
            RELEASE_UNHELD: false,
            RELEASE_CLAIMS: false,
            FINISH_RUNS: true,
            FINISH_ONE: true,
            ENDED_AS_SAID: false,
            PICK_BUDGETED: false,
            PRUNE_CHARGES: true,
            CHARGES_IN_WINDOW: true,
            REFUSE_RUNS: false,
            CLAIM_PICKED: false,
            INSERT_CHARGES: false,
        );
    }
}
