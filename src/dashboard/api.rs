//! The JSON API's reads: `api/queues`, `api/runs`, `api/runs/{id}`, `api/schedules`,
//! `api/tasks`, `api/tasks/{id}`. Failures are `{"error": "..."}` with a 4xx or 5xx status.

use axum::extract::{Path, Query};
use axum::Json;
use serde::Deserialize;

use super::failure::ApiFailure;
use super::filter::RunsQuery;
use super::view::{self, Queue, Run, RunsPage, Schedule, Task};
use axum::extract::State;

use super::AppState;

pub(crate) async fn queues(State(app): State<AppState>) -> Result<Json<Vec<Queue>>, ApiFailure> {
    Ok(Json(view::queues(&app).await?))
}

pub(crate) async fn runs(
    State(app): State<AppState>,
    Query(query): Query<RunsQuery>,
) -> Result<Json<RunsPage>, ApiFailure> {
    let parsed = query.parse()?;
    Ok(Json(view::runs(&app, &parsed).await?))
}

pub(crate) async fn run(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Run>, ApiFailure> {
    Ok(Json(view::run(&app, &id).await?))
}

pub(crate) async fn schedules(
    State(app): State<AppState>,
) -> Result<Json<Vec<Schedule>>, ApiFailure> {
    Ok(Json(view::schedules(&app).await?))
}

#[derive(Debug, Deserialize)]
pub(crate) struct Limit {
    #[serde(default = "default_limit")]
    limit: usize,
}

const fn default_limit() -> usize {
    200
}

pub(crate) async fn tasks(
    State(app): State<AppState>,
    Query(limit): Query<Limit>,
) -> Json<Vec<Task>> {
    Json(view::tasks(&app, limit.limit))
}

pub(crate) async fn task(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Task>, ApiFailure> {
    Ok(Json(view::task(&app, &id)?))
}
