//! The in-process tasks of this runner: the list (newest first) and one task; cancel.

use axum::extract::Path;
use axum::http::Uri;
use axum::response::Html;
use maud::html;

use super::layout::{action, layout, live, opt, status};
use super::root_of;
use crate::dashboard::failure::PageFailure;
use axum::extract::State;

use crate::dashboard::{view, AppState};

/// The most tasks the list shows.
const SHOWN: usize = 200;

fn finished(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

pub(crate) async fn tasks(State(app): State<AppState>) -> Html<String> {
    let tasks = view::tasks(&app, SHOWN);
    let body = html! {
        h1 { "Tasks in this process" }
        @if tasks.is_empty() { p.muted { "No tasks." } }
        table {
            thead { tr {
                th.num { "Id" } th { "Name" } th { "Queue" } th { "Status" } th.num { "Attempts" }
                th { "Created (UTC)" } th { "Progress" } th { "Error" } th { "Actions" }
            } }
            tbody { @for t in &tasks {
                tr {
                    td.num { a href={ "tasks/" (t.id) } { (t.id) } }
                    td { (t.name) } td { (t.queue) } td { (status(&t.status)) } td.num { (t.attempts) }
                    td { (t.created_at) }
                    td { @if let Some((p, m)) = &t.progress { (format!("{p:.0}%")) " " (m) } }
                    td.err { (opt(t.error.as_deref())) }
                    td { @if !finished(&t.status) {
                        (action(&format!("api/tasks/{}/cancel", t.id), "Cancel", "danger", None))
                    } }
                }
            } }
        }
    };
    Html(layout(Some("./"), "Tasks", live("tasks", body)).0)
}

pub(crate) async fn task(
    State(app): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Html<String>, PageFailure> {
    let t = view::task(&app, &id)?;
    let root = root_of(&uri);
    let body = html! {
        p { a href={ (root) "tasks" } { "« Tasks" } }
        h1 { "Task " (t.id) " · " (t.name) " " (status(&t.status)) }
        @if !finished(&t.status) {
            (action(&format!("{root}api/tasks/{}/cancel", t.id), "Cancel", "danger", None))
        }
        dl.kv {
            dt { "Call id" } dd { (t.call_id) }
            dt { "Queue" } dd { (t.queue) }
            dt { "Priority" } dd { (t.priority) }
            dt { "Attempts" } dd { (t.attempts) }
            dt { "Created" } dd { (t.created_at) }
            dt { "Started" } dd { (opt(t.started_at.as_deref())) }
            dt { "Finished" } dd { (opt(t.finished_at.as_deref())) }
            dt { "Waiting for" } dd { (opt(t.waiting_for.as_deref())) }
            dt { "Schedule" } dd { (opt(t.schedule.as_deref())) }
            dt { "Progress" } dd { @if let Some((p, m)) = &t.progress { (format!("{p:.0}%")) " " (m) } @else { span.muted { "–" } } }
        }
        @if let Some(e) = &t.error { h2 { "Error" } pre.err { (e) } }
    };
    Ok(layout(
        Some(&root),
        &format!("Task {}", t.id),
        live(&t.id.to_string(), body),
    ))
}
