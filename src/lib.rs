//! An in-process task runner for agent frameworks.
//!
//! An agent asks a model what to do; the model answers with action calls ("search the web",
//! "run the tests"). Each call becomes a task. `taskrunner` runs them many at once without
//! flooding a rate-limited API, lets urgent calls jump ahead, retries flaky ones without
//! wasting a slot, and cancels them when the user aborts.
//!
//! # The pieces
//!
//! - A [`TaskRunner`] holds **named queues** (`main`, concurrency 3, unless configured). Each
//!   queue has its own concurrency limit and a **priority order**: higher priority first, FIFO
//!   among equals. A full queue never delays another.
//! - A [`Task`] is a named handler plus options: queue, priority, [`RetryPolicy`], timeout,
//!   call id.
//! - [`TaskRunner::enqueue_task`] returns a [`TaskHandle`]: a future of the handler's
//!   `Result<T, TaskError<E>>`, with [`id`](TaskHandle::id), [`status`](TaskHandle::status)
//!   and [`cancel`](TaskHandle::cancel).
//! - Each attempt gets a [`TaskContext`]: call id, task id, attempt number, queue, and an
//!   abort token ([`CancellationToken`](tokio_util::sync::CancellationToken)); it runs inside
//!   a `tracing` span carrying them.
//! - [`TaskRunner::get_status`] and [`TaskRunner::list_tasks`] return [`TaskInfo`] records;
//!   [`TaskRunner::queue_stats`] returns [`QueueStats`].
//!
//! # Hearing about background work
//!
//! - [`TaskRunner::subscribe`]: a stream of [`Event`]s, exactly one terminal event a task.
//! - [`Task::notify`]: a [`Notification`] in the runner's inbox when the task ends, for an
//!   agent loop to [drain](TaskRunner::drain_notifications) before its next model call.
//! - [`TaskContext::set_progress`], read back with [`TaskHandle::progress`].
//! - [`Task::on_complete`] and [`Task::on_error`] callbacks.
//! - [`TaskDef`]: a reusable task definition with default options.
//! - `ShellTask` (feature `process`, on by default, Unix): a shell command whose whole
//!   process group dies with its task.
//! - [`QueueStats`]: each queue's counts, the age of its oldest waiting task, and recent
//!   wait and run-time percentiles; with feature `metrics`, per-queue counters, gauges and
//!   histograms through the [`metrics`](https://docs.rs/metrics) facade (names in the
//!   README's table and on [`TaskRunner::queue_stats`]).
//!
//! # Recurring work
//!
//! [`TaskRunner::schedule`] runs a fresh task each time a [`Schedule`] fires: a fixed
//! interval ([`Schedule::every`]) or a cron expression ([`Schedule::cron`], in UTC or a
//! [time zone](Schedule::timezone)), with an [`Overlap`] policy for a fire that finds the
//! last run unfinished, jitter, `max_runs`, and start and end times. Its
//! [`ScheduleHandle`] pauses, resumes, stops and triggers it, and reports a
//! [`ScheduleInfo`]: runs, failures, skipped fires, last and next run. Each run is an ordinary
//! task tagged with its schedule's name; schedule events go on the same event stream.
//!
//! ```
//! use std::time::Duration;
//! use taskrunner::{Schedule, Task, TaskContext, TaskRunner};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runner = TaskRunner::new();
//! let monitor = runner.schedule("monitor", Schedule::every(Duration::from_secs(300)), || {
//!     Task::new("check", |_: TaskContext| async { Ok::<_, String>("all good") })
//! })?;
//! tokio::time::sleep(Duration::from_secs(3610)).await; // fires at 300 s, 600 s, ..., 3600 s
//! assert_eq!(monitor.info().runs, 12);
//! runner.shutdown().await; // stops every schedule first
//! # Ok(())
//! # }
//! ```
//!
//! # Durable runs
//!
//! With a store (features `sqlite`, on by default, and `postgres`), runs survive restarts:
//! give the builder a [`store::SqliteStore`] or [`store::PgStore`], [`register`](TaskRunnerBuilder::register)
//! the serde-typed [`TaskDef`]s this process runs, and [`submit`](TaskRunner::submit) runs;
//! each returns a [`RunHandle`] once committed, which any process can rebuild from its
//! [`RunId`] ([`TaskRunner::run_handle`]) and await. See the [`store`] module for what holds
//! (order, leases and recovery, fencing, global concurrency, cancel, retention). Inside a
//! durable handler, [`TaskContext::step`] stores each model or tool call's result once it
//! succeeds, so a retried or recovered run does not make that call again.
//!
//! # Dashboard and CLI
//!
//! Feature `dashboard`: `dashboard::router(runner, Dashboard::new())` is an `axum::Router` to
//! nest under any prefix of your app: queues, durable runs (filters, keyset pages, input
//! search), one run's input, output, error and steps, schedules and in-process tasks, with
//! cancel, retry ([`TaskRunner::retry_run`]), pause, resume and concurrency, behind an access
//! hook; the same data as JSON under `api/`. Feature `cli`: the `taskrunner` binary, on the
//! same API, for a SQLite file or a PostgreSQL URL (`taskrunner ui` serves the dashboard).
//!
//! # Quick start
//!
//! ```
//! use std::time::Duration;
//! use taskrunner::{QueueConfig, RetryPolicy, Task, TaskContext, TaskError, TaskRunner};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runner = TaskRunner::builder()
//!     .queue("llm", QueueConfig::new().concurrency(1))
//!     .queue("tools", QueueConfig::new().concurrency(3))
//!     .build()?;
//!
//! // A flaky tool: fails twice, then answers. Retries wait 100 ms, then 200 ms.
//! let search = runner.enqueue_task(
//!     Task::new("web_search", |ctx: TaskContext| async move {
//!         if ctx.attempt() < 3 {
//!             Err(format!("HTTP 503 on attempt {}", ctx.attempt()))
//!         } else {
//!             Ok("3 results")
//!         }
//!     })
//!     .queue("tools")
//!     .priority(10)
//!     .retry(RetryPolicy::exponential(Duration::from_millis(100)).max_retries(3))
//!     .call_id("call_1"),
//! )?;
//!
//! // A slow one the user gives up on.
//! let slow = runner.enqueue_task(
//!     Task::new("crawl", |_: TaskContext| async {
//!         tokio::time::sleep(Duration::from_secs(3600)).await;
//!         Ok::<_, String>(())
//!     })
//!     .queue("tools"),
//! )?;
//! slow.cancel();
//!
//! assert_eq!(search.await?, "3 results");
//! assert!(matches!(slow.await, Err(TaskError::Cancelled)));
//! runner.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # What holds
//!
//! | | |
//! |---|---|
//! | limits | a queue never runs more handlers than its limit; a full queue never delays another |
//! | order | a freed slot goes to the highest-priority waiting task; equal priorities in enqueue order |
//! | start | a task enqueued while its queue has a free slot is running when `enqueue_task` returns |
//! | retry | none unless set; the backoff wait holds no slot; panics are not retried |
//! | timeout | per attempt, from the attempt's start; a timed-out attempt is retried like an error |
//! | cancel | a waiting task never runs; a running one's future is dropped by its worker at its next poll (or after its [cancel grace](Task::cancel_grace)), before its slot passes on; [`cancel_and_wait`](TaskRunner::cancel_and_wait) returns once it is |
//! | groups | a [`TaskGroup`]'s cancel: no member starts once it began, later enqueues refused; its cap holds across queues and delays no other task |
//! | panic | fails only its own task ([`TaskError::Panicked`]); the runner keeps working |
//! | handles | each resolves exactly once, after its terminal status is visible; dropping one does not cancel, unless made [`cancel_on_drop`](TaskHandle::cancel_on_drop) |
//! | memory | finished records are evicted oldest-first past a cap (default 10,000) |
//! | shutdown | [`shutdown`](TaskRunner::shutdown) finishes everything; [`shutdown_now`](TaskRunner::shutdown_now) cancels everything |
//! | runtime goes away | tasks in flight on it end [`TaskError::Shutdown`]; every handle resolves; the runner works from a new runtime |
//! | events | one terminal event a task, nothing after it; a stream ends when the last runner clone is dropped |
//! | schedules | fixed rate without drift; each cron occurrence once, across DST changes; missed fires coalesced; shutdown stops them first |
//!
//! The path of one task through the code is in `docs/architecture.md`.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![doc(test(attr(deny(warnings))))]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The layers, lowest first; each imports only from those above it in this list (checked by
// `tests/layers.rs`; a layer on top reaches the runner's shutdown and builder through
// `runner/extension.rs`, never the other way):
// leaves:   sync, panic, id, status, error, retry, config, runtime
// observe:  events, the notification inbox, timings, metrics
// task:     one task: builder, options, context, header, state machine, cell, attempt
// queue:    one queue: its limit, its start order, flow control
// runner:   the engine and the public API: registry, workers, handles
// on top:   schedule, store, durable, stream (run streams), wait, step, shell
// served:   dashboard (the web dashboard; the `taskrunner` binary in src/bin uses it)
mod config;
#[cfg(all(feature = "dashboard", any(feature = "sqlite", feature = "postgres")))]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub mod dashboard;
#[cfg(all(
    feature = "dashboard",
    not(any(feature = "sqlite", feature = "postgres"))
))]
compile_error!("feature `dashboard` needs a store: enable feature `sqlite` or `postgres` too");
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod durable;
mod error;
mod id;
mod observe;
mod panic;
mod queue;
mod retry;
mod runner;
mod runtime;
mod schedule;
#[cfg(all(feature = "process", unix))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "process", unix))))]
mod shell;
mod status;
mod step;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub mod store;
mod stream;
mod sync;
mod task;
mod wait;

pub use config::{
    Budget, QueueConfig, RateLimit, DEFAULT_EVENT_CAPACITY, DEFAULT_NOTIFICATION_CAPACITY,
    DEFAULT_QUEUE, DEFAULT_RETAIN_FINISHED, DEFAULT_SUMMARY_LEN, MAX_RATE,
};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use durable::{
    DurableSchedule, RunHandle, ScheduleRunError, DEFAULT_LEASE, DEFAULT_POLL_INTERVAL,
};
pub use error::{ConfigError, EnqueueError, StepError, TaskError};
pub use id::{GroupId, TaskId};
pub use observe::{Event, EventKind, EventStream, Lagged, Notification, Percentiles};
pub use queue::QueueStats;
pub use retry::RetryPolicy;
pub use runner::{
    CancelOnDropHandle, GroupStats, Rejected, TaskGroup, TaskHandle, TaskRunner, TaskRunnerBuilder,
};
pub use schedule::{
    Overlap, Schedule, ScheduleError, ScheduleHandle, ScheduleInfo, ScheduleStatus,
};
#[cfg(all(feature = "process", unix))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "process", unix))))]
pub use shell::{ShellError, ShellOutput, ShellTask, DEFAULT_OUTPUT_CAP};
pub use status::{Progress, TaskInfo, TaskStatus, WaitReason};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use store::{RunFilter, RunId, RunInfo, RunOptions, RunStatus, StoreError, WaitingFor};
pub use stream::{EmitError, MAX_EMIT_BYTES};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use stream::{RunEvent, RunEventKind, RunEvents, DEFAULT_STREAM_POLL};
pub use task::{
    BoxHandler, BoxRetryPredicate, BoxTask, IntoTaskName, RetryAny, RetryPredicate, Task,
    TaskContext, TaskDef, TaskName, RETRY_AFTER_LIMIT,
};
pub use wait::{Joinable, SignalError};

/// The README's examples, compiled and run as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
