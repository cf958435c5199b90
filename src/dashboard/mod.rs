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
