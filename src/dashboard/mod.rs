//! A web dashboard a service mounts: queues, durable runs, schedules and in-process tasks,
//! with cancel, retry, pause, resume and concurrency, as an [`axum::Router`] (feature
//! `dashboard`).
//!
//! Nest [`router`] under any prefix of your own app, behind your own authentication; every
//! link in its pages is relative, so the prefix is yours to choose. [`Dashboard::access`]
//! says who may look and who may act: a read-only user's action gets `405`, a forbidden one
//! `403`, and each action is a `tracing` event (target `taskrunner::dashboard`) naming who did
//! what.
//!
//! ```no_run
//! use taskrunner::dashboard::{Access, Dashboard};
//! use taskrunner::TaskRunner;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runner = TaskRunner::new();
//! let dashboard = Dashboard::new().access(|parts: &axum::http::request::Parts| {
//!     match parts.headers.get("x-role").and_then(|v| v.to_str().ok()) {
//!         Some("admin") => Access::All,
//!         Some(_) => Access::ReadOnly,
//!         None => Access::Forbidden,
//!     }
//! });
//! let app = axum::Router::new().nest("/tasks", taskrunner::dashboard::router(runner, dashboard));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Pages and API
//!
//! | path | page | JSON (`api/...`) |
//! |---|---|---|
//! | `` (the prefix) | every queue: local and durable counts, wait and run times, limits; pause, resume, concurrency | `api/queues` |
//! | `runs` | durable runs: filters (`status`, `queue`, `name`, `q` in the input, `from`/`to`), newest first, keyset pages (`before`) | `api/runs` |
//! | `runs/{id}` | one run: input, output, error, steps, attempts, what it waits for, recoveries, parent and children, its event stream live; cancel, retry, send a signal | `api/runs/{id}`, `POST api/runs/{id}/cancel`, `.../retry`, `.../signal`; `GET api/runs/{id}/events` (server-sent events) |
//! | `schedules` | in-process and durable schedules; pause, resume, trigger | `api/schedules`, `POST api/schedules/{kind}/{name}/{pause,resume,trigger}` |
//! | `tasks` | this runner's in-process tasks | `api/tasks`, `api/tasks/{id}`, `POST api/tasks/{id}/cancel` |
//!
//! Queue actions are `POST api/queues/{name}/{pause,resume}` and
//! `POST api/queues/{name}/concurrency?limit=N`. An action must carry an `HX-Request` or
//! `X-Requested-With` header (the pages' htmx sends it; a cross-site form cannot), so a
//! browser's cookies alone never act.
//!
//! Pages poll every 2 seconds while visible, never two polls at once, with one htmx file
//! built into the binary; counts stop at [`COUNT_CAP`](crate::store::COUNT_CAP) and read
//! only indexes, so pages stay fast on a store of millions of runs.
//!
//! # A run's events in your own app, over server-sent events
//!
//! The run page's live events come from `api/runs/{id}/events` (JSON data, one object an
//! event). An app of your own serves a run's stream to a browser's `EventSource` in twenty
//! lines: the event id is the offset, and a reconnect sends `Last-Event-ID`, from which the
//! stream resumes with no gap and no duplicate; the response ends after the run's terminal
//! event.
//!
//! ```
//! use axum::extract::{Path, State};
//! use axum::http::HeaderMap;
//! use axum::response::sse::{Event, KeepAlive, Sse};
//! use futures::{Stream, StreamExt as _};
//! use taskrunner::{RunEventKind, RunId, TaskRunner};
//!
//! /// `GET /runs/{id}/events`: run `id`'s events as server-sent events, the offset as id.
//! async fn events(
//!     State(runner): State<TaskRunner>,
//!     Path(id): Path<RunId>,
//!     headers: HeaderMap,
//! ) -> Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>> {
//!     let last = headers.get("last-event-id").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
//!     let stream = runner.run_events(id).from(last.map_or(0, |n| n + 1)).map(|event| {
//!         let event = match event {
//!             Ok(event) => event,
//!             Err(e) => return Ok(Event::default().event("error").data(e.to_string())),
//!         };
//!         let sse = match &event.kind {
//!             // A live event (`emit_live`) takes no offset: no id, a reconnect resumes after the last stored one.
//!             RunEventKind::Emitted { live: true, topic, value } => return Ok(Event::default().event(topic).data(value.to_string())),
//!             RunEventKind::Emitted { topic, value, .. } => Event::default().event(topic).data(value.to_string()),
//!             RunEventKind::Status(status) => Event::default().event("status").data(format!("{status:?}")),
//!             other => Event::default().event("run").data(format!("{other:?}")),
//!         };
//!         Ok(sse.id(event.offset.to_string()))
//!     });
//!     Sse::new(stream).keep_alive(KeepAlive::default())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use tower::ServiceExt as _;
//! # use taskrunner::{store::SqliteStore, TaskContext, TaskDef};
//! # let dir = std::env::temp_dir().join(format!("taskrunner-doc-sse-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let plan = TaskDef::new("plan", |ctx: TaskContext, _: ()| async move {
//! #     ctx.emit("step", &"search").await?;
//! #     Ok::<_, String>(())
//! # });
//! # let runner = TaskRunner::builder().store(SqliteStore::open(dir.join("runs.db")).await?).register(&plan).build()?;
//! # let run = runner.submit(&plan, ()).await?;
//! # let id = run.id();
//! # run.await?;
//! let app = axum::Router::new()
//!     .route("/runs/{id}/events", axum::routing::get(events))
//!     .with_state(runner.clone());
//! # let request = axum::http::Request::get(format!("/runs/{id}/events")).header("last-event-id", "0").body(axum::body::Body::empty())?;
//! # let body = axum::body::to_bytes(app.oneshot(request).await?.into_body(), usize::MAX).await?;
//! # let body = String::from_utf8(body.to_vec())?;
//! # assert!(body.contains("event: step\ndata: \"search\"\nid: 1"), "{body}");
//! # assert!(body.ends_with("event: status\ndata: Completed\nid: 2\n\n"), "{body}");
//! # runner.shutdown().await;
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

mod access;
mod actions;
mod api;
mod events;
mod failure;
mod filter;
mod pages;
mod signal;
mod view;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

pub use access::{Access, Dashboard};

use crate::TaskRunner;

/// What every handler shares.
pub(crate) struct App {
    runner: TaskRunner,
    dashboard: Dashboard,
}

type AppState = Arc<App>;

/// The dashboard of `runner` as a router to nest under any prefix: pages, their one
/// script, and the JSON API (see the [module docs](self)).
pub fn router(runner: TaskRunner, dashboard: Dashboard) -> Router {
    let app = Arc::new(App { runner, dashboard });
    Router::new()
        .route("/", get(pages::overview))
        .route("/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/schedules", get(pages::schedules))
        .route("/tasks", get(pages::tasks))
        .route("/tasks/{id}", get(pages::task))
        .route("/assets/htmx.min.js", get(pages::htmx))
        .route("/api/queues", get(api::queues))
        .route("/api/queues/{name}/{action}", post(actions::queue))
        .route("/api/runs", get(api::runs))
        .route("/api/runs/{id}", get(api::run))
        .route("/api/runs/{id}/events", get(events::events))
        .route("/api/runs/{id}/signal", post(signal::signal))
        .route("/api/runs/{id}/{action}", post(actions::run))
        .route("/api/schedules", get(api::schedules))
        .route(
            "/api/schedules/{kind}/{name}/{action}",
            post(actions::schedule),
        )
        .route("/api/tasks", get(api::tasks))
        .route("/api/tasks/{id}", get(api::task))
        .route("/api/tasks/{id}/{action}", post(actions::task))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            access::guard,
        ))
        .with_state(app)
}
