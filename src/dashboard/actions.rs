//! The operator's actions, `POST api/...`: cancel and retry a run, pause, resume and resize a
//! queue, pause, resume and trigger a schedule, cancel a task. Each is a `tracing` event
//! (target `taskrunner::dashboard`) naming who did what, and answers
//! `{"action": ..., "target": ..., "done": bool}`; a request from the pages' htmx also gets
//! an `HX-Trigger: refresh` header, so the page reloads its live part.

use std::collections::HashMap;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::access::Who;
use super::failure::{ApiFailure, Failure};
use axum::extract::State;

use super::AppState;
use crate::store::RunId;

/// The answer to an action, and its `tracing` event.
pub(crate) fn done(
    who: &Who,
    headers: &HeaderMap,
    action: &str,
    target: &str,
    done: bool,
) -> Response {
    tracing::info!(
        target: "taskrunner::dashboard",
        who = %who.0,
        action,
        on = %target,
        done,
        "dashboard action"
    );
    let mut response =
        Json(serde_json::json!({ "action": action, "target": target, "done": done }))
            .into_response();
    if headers.contains_key("hx-request") {
        response
            .headers_mut()
            .insert("hx-trigger", HeaderValue::from_static("refresh"));
    }
    response
}

fn unknown(action: &str, allowed: &str) -> ApiFailure {
    ApiFailure(Failure::BadRequest(format!(
        "unknown action `{action}`: use {allowed}"
    )))
}

pub(crate) async fn run(
    State(app): State<AppState>,
    Extension(who): Extension<Who>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, ApiFailure> {
    let id: RunId = id
        .parse()
        .map_err(|e: crate::store::ParseRunIdError| Failure::NotFound(e.to_string()))?;
    let ok = match action.as_str() {
        "cancel" => app.runner.cancel_run(id).await?,
        "retry" => app.runner.retry_run(id).await?,
        _ => return Err(unknown(&action, "cancel or retry")),
    };
    if !ok && app.runner.run_info(id).await?.is_none() {
        return Err(ApiFailure(Failure::NotFound(format!("no run {id}"))));
    }
    Ok(done(
        &who,
        &headers,
        &format!("{action}_run"),
        &id.to_string(),
        ok,
    ))
}

pub(crate) async fn queue(
    State(app): State<AppState>,
    Extension(who): Extension<Who>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, ApiFailure> {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let bad = |e: crate::ConfigError| ApiFailure(Failure::NotFound(e.to_string()));
    match action.as_str() {
        "pause" => app.runner.pause_queue(&name).map_err(bad)?,
        "resume" => app.runner.resume_queue(&name).map_err(bad)?,
        "concurrency" => {
            let limit = query
                .get("limit")
                .or_else(|| form.get("limit"))
                .and_then(|l| l.trim().parse::<usize>().ok())
                .filter(|l| *l > 0)
                .ok_or_else(|| {
                    ApiFailure(Failure::BadRequest(
                        "`limit` must be a whole number of at least 1".into(),
                    ))
                })?;
            app.runner.set_concurrency(&name, limit).map_err(bad)?;
            let action = format!("set_concurrency({limit})");
            return Ok(done(&who, &headers, &action, &name, true));
        }
        _ => return Err(unknown(&action, "pause, resume or concurrency")),
    }
    Ok(done(
        &who,
        &headers,
        &format!("{action}_queue"),
        &name,
        true,
    ))
}

pub(crate) async fn schedule(
    State(app): State<AppState>,
    Extension(who): Extension<Who>,
    headers: HeaderMap,
    Path((kind, name, action)): Path<(String, String, String)>,
) -> Result<Response, ApiFailure> {
    let missing = || ApiFailure(Failure::NotFound(format!("no {kind} schedule `{name}`")));
    let ok = match kind.as_str() {
        "local" => {
            let handle = app.runner.schedule_handle(&name).ok_or_else(missing)?;
            match action.as_str() {
                "pause" => handle.pause(),
                "resume" => handle.resume(),
                "trigger" => handle.trigger().is_ok(),
                _ => return Err(unknown(&action, "pause, resume or trigger")),
            }
        }
        "durable" => {
            let handle = app.runner.durable_schedule(&name)?;
            if handle.info().await?.is_none() {
                return Err(missing());
            }
            match action.as_str() {
                "pause" => handle.pause().await?,
                "resume" => handle.resume().await?,
                "trigger" => handle.trigger().await?.is_some(),
                _ => return Err(unknown(&action, "pause, resume or trigger")),
            }
        }
        _ => {
            return Err(ApiFailure(Failure::BadRequest(format!(
                "unknown schedule kind `{kind}`: use local or durable"
            ))))
        }
    };
    let target = format!("{kind}:{name}");
    Ok(done(
        &who,
        &headers,
        &format!("{action}_schedule"),
        &target,
        ok,
    ))
}

pub(crate) async fn task(
    State(app): State<AppState>,
    Extension(who): Extension<Who>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, ApiFailure> {
    if action != "cancel" {
        return Err(unknown(&action, "cancel"));
    }
    let task = super::view::task(&app, &id)?;
    let found = app
        .runner
        .list_tasks()
        .into_iter()
        .find(|t| t.id.as_u64() == task.id)
        .map(|t| t.id);
    let ok = found.is_some_and(|id| app.runner.cancel(id));
    Ok(done(
        &who,
        &headers,
        "cancel_task",
        &task.id.to_string(),
        ok,
    ))
}
